"""Scaling one dimension at a time vs compound scaling at matched MACs (EfficientNet Figs. 3, 8).

  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py \
      --workdir workdirs/ablations/scaling
  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py:scale=imagenet \
      --workdir gs://BUCKET/scaling --config.train.data.manual_dir=/data/imagenet

The base model (EfficientNet-B0 compound-scaled to φ = −12 at 24 px on the embedded Fashion-MNIST;
at scale=imagenet B0 itself at 224 px with the official recipe) is scaled by φ = 1, 2 with
(α, β, γ) = (1.2, 1.1, 1.15); width-only, depth-only and resolution-only models are matched to
each compound model's MACs. 9 rows, each a 240-step training run. Writes results.csv and
scaling.png (top-1 and reward vs MACs per dimension).
Expected: differences between dimensions of about 1 % are within this scale's noise; deeper
models are undertrained in 240 steps. At ImageNet scale the paper's result: compound above every
single dimension at equal FLOPs. Measured results and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  return experiment(
      'scaling', 'scaling', train_config(scale, 'efficientnet_b0'),
      model='efficientnet_b0', base_phi=-12.0 if small else 0.0,
      base_image_size=24 if small else 224, phis=(1.0, 2.0) if small else (1.0, 2.0, 3.0),
      dimensions=('width', 'depth', 'resolution'), alpha=1.2, beta=1.1, gamma=1.15)
