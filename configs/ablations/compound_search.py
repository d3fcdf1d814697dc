"""The compound-coefficient grid search: α, β, γ ≥ 1 with α·β²·γ² ≈ 2 at φ = 1, the best triple
by accuracy, then the base scaled by φ = 2 with it (EfficientNet Sec. 3.3).

  python -m effnet_jax.tools.ablate --config configs/ablations/compound_search.py \
      --workdir workdirs/ablations/compound_search
  python -m effnet_jax.tools.ablate --config configs/ablations/compound_search.py:scale=imagenet \
      --workdir gs://BUCKET/compound_search --config.train.data.manual_dir=/data/imagenet

Grid kept where |α·β²·γ² − 2| ≤ 0.15. Small: α ∈ {1, 1.2}, β ∈ {1, 1.1, 1.2}, γ ∈ {1.15, 1.3}:
four triples, the paper's (1.2, 1.1, 1.15) among them (the full small grid, six triples:
--config.alphas='(1.0, 1.2, 1.4)' --config.gammas='(1.0, 1.15, 1.3)', the imagenet default).
Base: B0 at φ = −12, 24 px (scale=imagenet: B0, 224 px, the official recipe, φ = 2, 3
afterwards). Small: 6 rows (base, 4 triples, the best at φ = 2) × 3 seeds of 240 steps. Claim:
the paper's triple above every other triple. Writes results.csv, seeds.csv, verdict.md and
compound_search.png.
Expected: inconclusive at this scale — the φ = 1 models lie within about a point of one another
and α (depth) barely changes the rounded tiny models; the paper found (1.2, 1.1, 1.15).
Measured verdict and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  return experiment(
      'compound_search', 'compound_search', train_config(scale, 'efficientnet_b0'),
      claim="The paper's (alpha, beta, gamma) = (1.2, 1.1, 1.15) is the best triple of the grid "
            'under alpha * beta^2 * gamma^2 ~ 2 (EfficientNet Sec. 3.3, step 1)',
      model='efficientnet_b0', base_phi=-12.0 if small else 0.0,
      base_image_size=24 if small else 224, alphas=(1.0, 1.2) if small else (1.0, 1.2, 1.4),
      betas=(1.0, 1.1, 1.2), gammas=(1.15, 1.3) if small else (1.0, 1.15, 1.3), target=2.0,
      tolerance=0.15,
      scale_phis=(2.0,) if small else (2.0, 3.0))
