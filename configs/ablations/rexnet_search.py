"""ReXNet's channel-configuration search: random networks with block widths c_i = a·f(i) + b
(f a random monotone piecewise-linear curve, b drawn, a solved so the network is at the MACs
budget), each trained once, at two budgets; then the mean channel curves of the top, middle and
bottom candidates and how linear each group's curves are. An Optuna study per budget, shared by
every worker started with the same work directory.

  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_search.py \\
      --workdir workdirs/ablations/rexnet_search
  # more workers on the same study (one machine, or many hosts with a shared work directory and
  # --config.storage=postgresql://...): the same command with --config.worker=1, 2, ...
  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_search.py:scale=imagenet \\
      --workdir gs://BUCKET/rexnet_search --config.train.data.manual_dir=/data/imagenet \\
      --config.storage=postgresql://USER@HOST/rexnet_search

Small: ReXNet at width 0.5, depth 0.5 (10 blocks) at 32 px on the embedded data set, 6
candidates per budget (0.6x and 1.0x the linear model's 2.57 M MACs) of 120 steps each; thirds
for the groups (--config.candidates=30 or more for deciles). scale=imagenet: ReXNet-1.0 at 224 px, 200 candidates per budget (the paper's
count), each trained 10 % of the timm recipe's epochs at 128 px; deciles. Claim: at every budget
the most accurate configurations are the most linear. Writes results.csv (the groups),
candidates.csv (every candidate), best_macs<budget>.json (model files: --config.model=PATH),
verdict.md and rexnet_search.png.
Expected: at this scale the groups differ by a point or two and their curves overlap; 6
candidates per budget show the procedure, not the paper's result. The paper (CIFAR and ImageNet
searches): the top group's curves increase linearly at every budget. Measured verdict and wall
time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, search_settings, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  train = train_config(scale, 'rexnet_100', image_size=32, num_train_steps=120)
  if not small:
    train.num_epochs = train.num_epochs / 10
    train.input.image_size = 128
  return experiment(
      'rexnet_search', 'rexnet_search', train,
      claim='At every MACs budget the most accurate channel configurations increase linearly '
            '(ReXNet Sec. 4)',
      seeds=1, width_mult=0.5 if small else 1.0, depth_mult=0.5 if small else 1.0,
      budgets=(0.6, 1.0), macs_tolerance=0.02, segments=3,
      first_channels=(8.0, 32.0) if small else (8.0, 64.0),
      candidates=6 if small else 200, min_for_deciles=30,
      **search_settings(sampler='random'))
