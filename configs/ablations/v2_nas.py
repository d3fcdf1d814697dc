"""EfficientNetV2's training-aware NAS: per stage of a base network, the block type (MBConv or
Fused-MBConv), kernel 3 or 5, expansion 1, 4 or 6 and the layer count (the base's - 1, + 0,
+ 1); each candidate trained briefly, its train step timed on this machine and its parameters
counted; a multi-objective Optuna study (accuracy, step time, parameters) with its Pareto front
and the paper's reward A·S^-0.07·P^-0.05 (S, P relative to the base network). Shared by every
worker started with the same work directory; a stopped search resumes.

  python -m effnet_jax.tools.ablate --config configs/ablations/v2_nas.py \\
      --workdir workdirs/ablations/v2_nas
  python -m effnet_jax.tools.ablate --config configs/ablations/v2_nas.py \\
      --workdir workdirs/ablations/v2_nas_random --config.sampler=random
  # more workers on the same study: the same command with --config.worker=1, 2, ...
  python -m effnet_jax.tools.ablate --config configs/ablations/v2_nas.py:scale=imagenet \\
      --workdir gs://BUCKET/v2_nas --config.train.data.manual_dir=/data/imagenet \\
      --config.storage=postgresql://USER@HOST/v2_nas

Small: the stages of EfficientNetV2-B0 at phi -5 (2.5 M MACs) at 32 px on the embedded data set,
12 candidates of 150 steps (the base first, then 5 random proposals, then multi-objective TPE),
each timed in 3 rounds of 10 steps. scale=imagenet: the stages of EfficientNetV2-S (the paper
searched around an EfficientNet-B4-sized backbone), up to 1000 candidates of 10 epochs at
128 px. Claim: the best-rewarded candidates put Fused-MBConv early and MBConv late. Writes
results.csv (the groups, then every candidate by reward), reward_table.csv, best.json (a model
file: --config.model=PATH), verdict.md and v2_nas.png.
Expected: 12 candidates cannot settle the claim (thirds of 4); the Pareto front and the reward
table are the output. The paper: Fused-MBConv in stages 1-3, MBConv after. Measured:
docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, search_settings, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  base = 'efficientnetv2_b0' if small else 'efficientnetv2_s'  # candidates build from the base
  train = train_config(scale, base, image_size=32, num_train_steps=150)
  if not small:
    train.num_epochs = 10
    train.input.image_size = 128
  config = experiment(
      'v2_nas', 'v2_nas', train,
      claim='Training-aware NAS puts Fused-MBConv in the early stages and MBConv in the later '
            'ones (EfficientNetV2 Sec. 3.3)',
      seeds=1, base=base,
      phi=-5.0 if small else 0.0, ops=('fu', 'ir'), kernels=(3, 5), expansions=(1, 4, 6),
      layer_deltas=(-1, 0, 1), channel_mults=(1.0,), candidates=12 if small else 1000,
      reward_w=-0.07, reward_v=-0.05,
      **search_settings(sampler='tpe', startup=6 if small else 100))
  config.unlock()
  config.timing_repeats, config.timing_steps = (3, 10) if small else (5, 20)
  config.lock()
  return config
