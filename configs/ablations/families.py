"""CNNs against a Transformer at one training budget: EfficientNetV2, ReXNet, ResNet-50 and
Swin-T (EfficientNetV2 Sec. 5.2 and Table 7; ReXNet Sec. 4).

  python -m effnet_jax.tools.ablate --config configs/ablations/families.py \
      --workdir workdirs/ablations/families
  python -m effnet_jax.tools.ablate --config configs/ablations/families.py:scale=imagenet \
      --workdir gs://BUCKET/families --config.train.data.manual_dir=/data/imagenet

Every network trains with one recipe, batch, step count and seed set; only the model differs.
Small: the embedded Fashion-MNIST at 32 px, STEPS steps of batch 64 with the ablations' AdamW
recipe, each network shrunk to 2.3-2.7 M MACs: EfficientNetV2-B0 at φ = −5, ReXNet-1.0 at
φ = −7, ResNet-50 at φ = −14 (the family's compound scaling) and a Swin-T of width 24, blocks
1-1-2-1, heads 1-2-4-8 and window 4 (the token grids at 32 px are 8, 4, 2, 1); 3 seeds each.
scale=imagenet: the registered networks at 224 px, all with the Swin recipe (configs/swin.py:
AdamW, 300 epochs, RandAugment, Mixup/CutMix; the one recipe all four train with) and each
network's own stochastic depth. Besides top-1 and the timing pass's train images/s, the table
has parameters, MACs, eval images/s at the eval batch and the batch-1 latency (median, p90) on
this machine. Claim tests: EfficientNetV2 above each other network in accuracy, and its
train-step time below Swin's. Writes results.csv, seeds.csv, verdict.md and families.png
(top-1 against train and eval images/s).
Expected at ImageNet scale: the papers' comparison (EfficientNetV2-B0 78.7 % at 0.72B FLOPs,
ReXNet-1.0 77.9 % at 0.40B, ResNet-50 76.1 % at 4.1B, Swin-T 81.3 % at 4.5B: Swin-T is more
accurate than the small ConvNets but far more costly). Measured verdict and wall time at the
small scale: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config
from effnet_jax.recipes import SWIN_VARIANTS, swin

STEPS = 480  # small
NETWORKS = ('efficientnetv2', 'rexnet', 'resnet', 'swin')  # the first is the baseline
MODELS = {'efficientnetv2': 'efficientnetv2_b0', 'rexnet': 'rexnet_100', 'resnet': 'resnet50',
          'swin': 'swin_tiny_patch4_window7_224'}
SMALL = {'efficientnetv2': {'phi': -5.0}, 'rexnet': {'phi': -7.0}, 'resnet': {'phi': -14.0},
         'swin': {'stem_channels': 24, 'depths': (1, 1, 2, 1), 'num_heads': (1, 2, 4, 8),
                  'window_size': 4}}
# scale=imagenet: the official stochastic depth of each network (Swin-T's from its recipe)
IMAGENET = {'efficientnetv2': {'drop_path_rate': 0.2}, 'rexnet': {'drop_path_rate': 0.0},
            'resnet': {'drop_path_rate': 0.0},
            'swin': {'drop_path_rate': SWIN_VARIANTS['tiny'][1]}}


def get_config(arg=None):
  small = scale_of(arg) == 'small'
  if small:
    train = train_config('small', MODELS[NETWORKS[0]], image_size=32, num_train_steps=STEPS)
  else:
    train = swin(MODELS[NETWORKS[0]], drop_path_rate=0.0)
  return experiment(
      'families', 'families', train,
      claim='ConvNets designed for efficiency (EfficientNetV2, ReXNet) reach a higher accuracy '
            'than ResNet-50 and a Transformer (Swin) at one training budget, and train faster '
            'than the Transformer (EfficientNetV2 Sec. 5.2, Table 7; ReXNet Sec. 4)',
      networks=NETWORKS, models=MODELS, overrides=SMALL if small else IMAGENET)
