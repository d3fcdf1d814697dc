"""Published numbers for every registered model; provenance per field and model family, and the
disagreements between sources: docs/reference.md, 'Published numbers'.

``params`` is the exact trainable-parameter count of the released architecture as timm builds
it (``tf_efficientnet_*``, ``tf_efficientnetv2_*``, ``rexnet_*``, ``mobilenetv2_*``, ``resnet*``,
``swin_*`` built with ``pretrained=False``). ``gmacs`` is the conv + FC multiply-add count at ``eval_image_size``
(``None`` where no published FLOPs exist to compare with); for Swin it includes the attention
matmuls q·kᵀ and weights·v, and torch's FlopCounterMode on timm's model gives the same
4.491 / 8.741 / 15.431 G. ``paper_params``/``paper_flops`` are the rounded figures the papers or
official READMEs print, ``top1`` their ImageNet top-1 at the eval size; ``source`` names the table.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Published:
  params: int
  gmacs: float | None
  paper_params: str | None
  paper_flops: str | None
  top1: float | None
  source: str


_V1 = 'EfficientNet paper Table 2 / TPU README (AutoAugment)'
_V2 = 'EfficientNetV2 official release table (automl README)'
_RX = 'ReXNet README'
_MV2 = 'MobileNetV2 paper Table 4'
_MV2_SLIM = 'MobileNetV2 release table (tensorflow/models slim README)'
_MV2_TIMM = 'timm-only variant (depth-scaled, stem/head fixed); params: timm'
# ResNet: paper FLOPs are He et al. 2016 Table 1 (multiply-adds, 224 px; the paper's v1 places
# the bottleneck stride in the first 1x1 conv, so v1.5 counts more); top-1 of the torchvision
# weights of the same (v1.5) architecture, single 224 px crop of a 256 px resize.
_RN = ('He et al. 2016 Table 1 (FLOPs); top-1: torchvision docs, IMAGENET1K_V1 weights '
       '(tv_in1k)')
_RN_D = ('He et al. 2019 "Bag of Tricks" Table 5 (ResNet-50-D: FLOPs at 224 px, top-1); '
         'GMACs here at the 288 px eval size of the default weights')
_SWIN = 'Swin Transformer paper (Liu et al. 2021) Table 1(a), ImageNet-1k, 224 px'
_LITE = 'params: timm tf_efficientnet_lite* (official definition); no top-1 in the references'

_SEARCH = ('searched here on Fashion-MNIST at 32 px (docs/ablations.md, architecture searches); '
           'no published numbers')

PUBLISHED: dict[str, Published] = {
    'efficientnet_b0': Published(5_288_548, 0.386, '5.3M', '0.39B', 77.1, _V1),
    'efficientnet_b1': Published(7_794_184, 0.687, '7.8M', '0.70B', 79.1, _V1),
    'efficientnet_b2': Published(9_109_994, 0.994, '9.2M', '1.0B', 80.1, _V1),
    'efficientnet_b3': Published(12_233_232, 1.827, '12M', '1.8B', 81.6, _V1),
    'efficientnet_b4': Published(19_341_616, 4.394, '19M', '4.2B', 82.9, _V1),
    'efficientnet_b5': Published(30_389_784, 10.266, '30M', '9.9B', 83.6, _V1),
    'efficientnet_b6': Published(43_040_704, 19.068, '43M', '19B', 84.0, _V1),
    'efficientnet_b7': Published(66_347_960, 37.746, '66M', '37B', 84.3, _V1),
    'efficientnet_b8': Published(87_413_142, None, None, None, 85.5,
                                 'TPU README (AdvProp + AA); params: timm tf_efficientnet_b8'),
    'efficientnet_l2': Published(480_309_308, None, None, None, 88.4,
                                 'TPU README (NoisyStudent, extra data); params: timm '
                                 'tf_efficientnet_l2'),
    'efficientnet_lite0': Published(4_652_008, None, None, None, None, _LITE),
    'efficientnet_lite1': Published(5_416_680, None, None, None, None, _LITE),
    'efficientnet_lite2': Published(6_092_072, None, None, None, None, _LITE),
    'efficientnet_lite3': Published(8_197_096, None, None, None, None, _LITE),
    'efficientnet_lite4': Published(13_006_568, None, None, None, None, _LITE),
    'efficientnetv2_s': Published(21_458_488, 8.366, '21.5M', '8.4B', 83.9, _V2),
    'efficientnetv2_m': Published(54_139_356, 24.582, '54.1M', '24.7B', 85.2, _V2),
    'efficientnetv2_l': Published(118_515_272, 56.080, '119.5M', '56.3B', 85.7, _V2),
    'efficientnetv2_xl': Published(208_119_808, 93.353, '208M', '94B', 87.2,
                                   _V2 + ' (ImageNet-21k pre-trained)'),
    'efficientnetv2_b0': Published(7_139_704, 0.718, '7.1M', '0.72B', 78.7, _V2),
    'efficientnetv2_b1': Published(8_141_052, 1.197, '8.1M', '1.2B', 79.8, _V2),
    'efficientnetv2_b2': Published(10_096_086, 1.698, '10.1M', '1.7B', 80.5, _V2),
    'efficientnetv2_b3': Published(14_358_406, 3.011, '14.4M', '3.0B', 82.1, _V2),
    'rexnet_100': Published(4_796_873, 0.398, '4.8M', '0.40B', 77.9, _RX),
    'rexnet_130': Published(7_557_091, 0.662, '7.6M', '0.66B', 79.5, _RX),
    'rexnet_150': Published(9_728_593, 0.876, '9.7M', '0.88B', 80.3, _RX),
    'rexnet_200': Published(16_366_620, 1.529, '16M', '1.5B', 81.6, _RX),
    'rexnet_300': Published(34_708_792, 3.396, '34M', '3.4B', 82.8, _RX),
    'mobilenetv2_050': Published(1_968_680, 0.097, '1.95M', '97M', 65.4, _MV2_SLIM),
    'mobilenetv2_075': Published(2_636_424, 0.209, '2.61M', '209M', 69.8, _MV2_SLIM),
    'mobilenetv2_100': Published(3_504_872, 0.301, '3.4M', '300M', 72.0, _MV2),
    'mobilenetv2_140': Published(6_108_776, 0.582, '6.9M', '585M', 74.7, _MV2),
    'mobilenetv2_110d': Published(4_516_520, None, None, None, None, _MV2_TIMM),
    'mobilenetv2_120d': Published(5_831_144, None, None, None, None, _MV2_TIMM),
    'resnet18': Published(11_689_512, 1.814, None, '1.8B', 69.758, _RN),
    'resnet34': Published(21_797_672, 3.664, None, '3.6B', 73.314, _RN),
    'resnet50': Published(25_557_032, 4.089, None, '3.8B', 76.13, _RN),
    'resnet101': Published(44_549_160, 7.801, None, '7.6B', 77.374, _RN),
    'resnet152': Published(60_192_808, 11.514, None, '11.3B', 78.312, _RN),
    'resnet50d': Published(25_576_264, 7.154, '25M', '4.3B', 77.16, _RN_D),
    'swin_tiny_patch4_window7_224': Published(28_288_354, 4.491, '28M', '4.5G', 81.3, _SWIN),
    'swin_small_patch4_window7_224': Published(49_606_258, 8.741, '50M', '8.7G', 83.0, _SWIN),
    'swin_base_patch4_window7_224': Published(87_768_224, 15.431, '88M', '15.4G', 83.5, _SWIN),
    # searched here (models/searched.py); params: the searched network's own count, at 1000
    # classes; MACs at 32 px (the search's size)
    'rexnet_search_fmnist_060': Published(973_979, 0.002199, None, None, None, _SEARCH),
    'rexnet_search_fmnist_100': Published(1_165_310, 0.003232, None, None, None, _SEARCH),
    'efficientnetv2_nas_fmnist': Published(1_543_678, 0.005632, None, None, None, _SEARCH),
}
