"""The MobileNetV2 family (Sandler et al. 2018): the inverted-residual network EfficientNet's
compound scaling was first applied to (EfficientNet paper, Table 3).

Blocks: MBConv without squeeze-excitation and with ReLU6 (``effnet_jax.models.blocks``; the
first block is MBConv with expansion 1), built by the shared stem/stages/head skeleton. The
layout and the variants follow timm's ``mobilenetv2_*`` (PyTorch padding and BN constants):
widths x ``width_mult`` rounded to 8 with the 10 % rule, stem included; the head conv is never
narrower than 1280 (``max(1280, round(1280 * w))``); the ``d`` variants scale the depth with the
stem, the head and the first and last stages' repeats fixed. Compound scaling (``phi``) applies
as for EfficientNet (``registry.compound_scale``). Sources: docs/reference.md, 'MobileNetV2'.
"""
from __future__ import annotations

import dataclasses

from effnet_jax.models import arch as arch_lib
from effnet_jax.models import efficientnet
from effnet_jax.models.registry import (ModelConfig, official_bn_per_device, register,
                                        register_family)

# MobileNetV2 at width 1.0 (paper Table 2), one stage per entry.
MOBILENETV2_BASE = (
    ('ir_r1_k3_s1_e1_c16',),
    ('ir_r2_k3_s2_e6_c24',),
    ('ir_r3_k3_s2_e6_c32',),
    ('ir_r4_k3_s2_e6_c64',),
    ('ir_r3_k3_s1_e6_c96',),
    ('ir_r3_k3_s2_e6_c160',),
    ('ir_r1_k3_s1_e6_c320',),
)
HEAD_CHANNELS = 1280
# name suffix -> (width, depth, stem/head/first-last repeats fixed)
MOBILENETV2_VARIANTS = {
    '050': (0.5, 1.0, False), '075': (0.75, 1.0, False), '100': (1.0, 1.0, False),
    '140': (1.4, 1.0, False), '110d': (1.1, 1.2, True), '120d': (1.2, 1.4, True),
}


def head_channels(config: ModelConfig) -> int:
  """1280 channels, widened (never narrowed) with ``width_mult`` unless fixed."""
  if config.fix_stem_head:
    return config.head_channels
  return max(config.head_channels, arch_lib.round_filters(
      config.head_channels, config.width_mult, round_limit=config.round_limit))


FAMILY = register_family(dataclasses.replace(
    efficientnet.FAMILY, name='mobilenetv2', head_channels=head_channels,
    bn_group_size=official_bn_per_device,  # timm's recipe: BN statistics per device
    weight_layouts={'timm': 'timm_efficientnet'}))

for _suffix, (_w, _d, _fixed) in MOBILENETV2_VARIANTS.items():
  register(ModelConfig(
      name=f'mobilenetv2_{_suffix}', family='mobilenetv2', stages=MOBILENETV2_BASE,
      width_mult=_w, depth_mult=_d, stem_channels=32, head_channels=HEAD_CHANNELS,
      fix_stem_head=_fixed, fix_first_last_repeats=_fixed, round_limit=0.9,
      activation='relu6', padding='symmetric', bn_momentum=0.9, bn_eps=1e-5, dropout_rate=0.2,
      drop_path_rate=0.0, image_size=224, eval_image_size=224, crop_fraction=0.875,
      interpolation='bicubic'))
