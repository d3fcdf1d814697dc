"""The compound-coefficient grid search: α, β, γ ≥ 1 with α·β²·γ² ≈ 2 at φ = 1, the best triple
by accuracy, then the base scaled by φ = 2 with it (EfficientNet Sec. 3.3).

  python -m effnet_jax.tools.ablate --config configs/ablations/compound_search.py \
      --workdir workdirs/ablations/compound_search
  python -m effnet_jax.tools.ablate --config configs/ablations/compound_search.py:scale=imagenet \
      --workdir gs://BUCKET/compound_search --config.train.data.manual_dir=/data/imagenet

Grid α ∈ {1, 1.2, 1.4}, β ∈ {1, 1.1, 1.2}, γ ∈ {1, 1.15, 1.3}, kept where |α·β²·γ² − 2| ≤ 0.15:
six triples, the paper's (1.2, 1.1, 1.15) among them. Base: B0 at φ = −12, 24 px (scale=imagenet:
B0, 224 px, the official recipe, φ = 1 … 3 afterwards). 8 rows of 240 steps. Writes
results.csv and compound_search.png.
Expected: the six φ = 1 models within ~1-2 % of one another at this scale (the search cannot
separate them reliably in 240 steps); the paper found (1.2, 1.1, 1.15). Measured results and
wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  return experiment(
      'compound_search', 'compound_search', train_config(scale, 'efficientnet_b0'),
      model='efficientnet_b0', base_phi=-12.0 if small else 0.0,
      base_image_size=24 if small else 224, alphas=(1.0, 1.2, 1.4), betas=(1.0, 1.1, 1.2),
      gammas=(1.0, 1.15, 1.3), target=2.0, tolerance=0.15,
      scale_phis=(2.0,) if small else (2.0, 3.0))
