"""Scaling one dimension at a time vs compound scaling at matched MACs (EfficientNet Figs. 3, 8).

  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py \
      --workdir workdirs/ablations/scaling
  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py:scale=imagenet \
      --workdir gs://BUCKET/scaling --config.train.data.manual_dir=/data/imagenet

The base model (EfficientNet-B0 compound-scaled to φ = −12 at 24 px on the embedded Fashion-MNIST;
at scale=imagenet B0 itself at 224 px with the official recipe) is scaled by φ (small: 1; the
full small study --config.phis='(1.0, 2.0)'; imagenet: 1, 2, 3) with (α, β, γ) =
(1.2, 1.1, 1.15); width-only, depth-only and resolution-only models are matched to each compound
model's MACs. Small: 5 rows × 3 seeds, each a 720-step run (3/4 epoch, long enough that the
deeper rows are not merely undertrained). Claim: compound above every single dimension at equal
MACs (one test per dimension and φ). Writes results.csv, seeds.csv, verdict.md and scaling.png
(top-1 ± 95 % interval and reward vs MACs per dimension).
Expected: inconclusive at the small scale — the φ = 1 differences (about 0.5 points) are within
the 3-seed intervals. At ImageNet scale the paper's result. Measured verdict and wall time:
docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config

STEPS = 720  # small: 3/4 epoch of batch 64, so depth is not merely undertrained


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  train = train_config(scale, 'efficientnet_b0')
  if small:
    train.num_train_steps = STEPS
  return experiment(
      'scaling', 'scaling', train,
      claim='Compound scaling beats scaling a single dimension (width, depth or resolution) '
            'at equal MACs (EfficientNet Sec. 3.3, Figs. 3 and 8)',
      model='efficientnet_b0', base_phi=-12.0 if small else 0.0,
      base_image_size=24 if small else 224, phis=(1.0,) if small else (1.0, 2.0, 3.0),
      dimensions=('width', 'depth', 'resolution'), alpha=1.2, beta=1.1, gamma=1.15)
