"""ReXNet's rank analysis on random networks: rank ratio of a layer's output f(WX) vs its
expansion ratio d_out / d_in, per nonlinearity (Han et al. 2021, Sec. 3).

  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_rank.py \
      --workdir workdirs/ablations/rexnet_rank
  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_rank.py:scale=imagenet \
      --workdir /tmp/rexnet_rank          # wider layers (d_in 64) and more trials

No training: random layers, d_in = 16 inputs, expansions 1/4 … 24, 3 trials each (the samples
of the intervals), numerical rank at relative tolerance 1e-2 and the (tolerance-free) effective
rank. Claim: SiLU and ReLU6 keep more rank than a linear layer at expansion 6, SiLU more at
expansion 2 than at 12. Writes results.csv, verdict.md and rexnet_rank.png.
Expected: linear layers at exactly min(1, 1/expansion); every nonlinearity above it, the rank
ratio falling as the expansion grows (the paper's case for moderate expansions). Measured results
and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of


def get_config(arg=None):
  big = scale_of(arg) == 'imagenet'
  return experiment(
      'rexnet_rank', 'rexnet_rank', train=None,
      claim='An expanding layer with a nonlinearity keeps more rank than a linear layer, and '
            'keeps less of it the more it expands (ReXNet Sec. 3)',
      nonlinearities=('linear', 'relu', 'relu6', 'leaky_relu', 'elu', 'softplus', 'silu',
                      'sigmoid'),
      expansions=(0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0), d_in=64 if big else 16, samples_per_output=2,
      trials=10 if big else 3, rtol=1e-2, seed=0)
