"""Fused-MBConv placement (EfficientNetV2 Table 3): MBConv replaced by Fused-MBConv in no stage,
stages 1-3, 1-5 and all 7 stages of EfficientNet-B0, measuring params, MACs, train images/s and
accuracy.

  python -m effnet_jax.tools.ablate --config configs/ablations/fused_placement.py \
      --workdir workdirs/ablations/fused_placement
  python -m effnet_jax.tools.ablate --config configs/ablations/fused_placement.py:scale=imagenet \
      --workdir gs://BUCKET/fused_placement --config.train.data.manual_dir=/data/imagenet

Small: B0 compound-scaled to φ = −12 at 24 px, 240 steps per row on the embedded data set;
scale=imagenet: EfficientNet-B4 (the paper's model) with the official recipe. Writes results.csv
and fused_placement.png.
Expected: params and MACs grow with every fused stage (a k×k full conv replaces a 1x1 expansion
and a depthwise conv); train images/s on TPU/GPU rises for early stages and falls when all are
fused (the paper: 1-3 best). Measured results and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  train = train_config(scale, 'efficientnet_b0' if small else 'efficientnet_b4')
  if small:
    train.model_overrides.phi = -12.0
  return experiment('fused_placement', 'fused_placement', train, fused_stages=(0, 3, 5, 7))
