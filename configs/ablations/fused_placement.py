"""Fused-MBConv placement (EfficientNetV2 Table 3): MBConv replaced by Fused-MBConv in no stage,
stages 1-3, 1-5 and all 7 stages of EfficientNet-B0, measuring params, MACs, train images/s and
accuracy.

  python -m effnet_jax.tools.ablate --config configs/ablations/fused_placement.py \
      --workdir workdirs/ablations/fused_placement
  python -m effnet_jax.tools.ablate --config configs/ablations/fused_placement.py:scale=imagenet \
      --workdir gs://BUCKET/fused_placement --config.train.data.manual_dir=/data/imagenet

Small: B0 compound-scaled to φ = −12 at 24 px, 4 rows × 3 seeds of 240 steps on the embedded
data set; scale=imagenet: EfficientNet-B4 (the paper's model) with the official recipe. Claim:
stages 1-3 fused train faster than none (timing pass) at no loss of accuracy, all fused slower
than 1-3. Writes results.csv, seeds.csv, verdict.md and fused_placement.png.
Expected: params and MACs grow with every fused stage (a k×k full conv replaces a 1x1 expansion
and a depthwise conv); train images/s on TPU/GPU rises for early stages and falls when all are
fused (the paper: 1-3 best). The speed part is an accelerator argument (depthwise convolutions
use TPUs and GPUs poorly); at 24 px on a CPU the same ordering holds for other reasons. Measured
verdict and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  train = train_config(scale, 'efficientnet_b0' if small else 'efficientnet_b4')
  if small:
    train.model_overrides.phi = -12.0
  return experiment(
      'fused_placement', 'fused_placement', train,
      claim='Fused-MBConv in the early stages (1-3) trains faster than MBConv everywhere at no '
            'loss of accuracy, while fusing every stage slows training (EfficientNetV2 Table 3)',
      fused_stages=(0, 3, 5, 7))
