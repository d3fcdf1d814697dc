"""A 3-stage progressive-learning run on the embedded data set: the curriculum end to end in a
few minutes on a CPU.

  python -m effnet_jax.main --config configs/curriculum_smoke.py --workdir /tmp/curriculum_smoke

Stages at 16, 24 and 32 px (buckets: one train-step compilation each, ahead of time), RandAugment
magnitude 5 -> 7.5 -> 10 and Mixup = CutMix alpha 0 -> 0.1 -> 0.2 (the released code's ramps),
one epoch in all. Prints the schedule table at start; metrics.jsonl holds one compile record per
stage and train/image_size per log step.
Expected: 67.5 % test top-1 after its single epoch (a smoke test, not a result; the run is
deterministic), 3 train-step compilations. Wall times: docs/curriculum.md.
"""
from effnet_jax.config import check_arg_keys, parse_config_arg
from effnet_jax.recipes import small_progressive


def get_config(arg=None):
  check_arg_keys(parse_config_arg(arg), {})  # takes no config argument
  c = small_progressive()
  c.eval_every_epochs = 0.0
  return c


