"""Run one ablation experiment from a config file; write its CSV and plots.

  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py --workdir DIR
  python -m effnet_jax.tools.ablate --config configs/ablations/scaling.py:scale=imagenet \\
      --workdir gs://bucket/scaling --config.train.data.manual_dir=/data/imagenet

Writes ``DIR/results.csv`` (one line per row: its settings, params, MACs, the mean accuracy over
the seeds with its 95 % interval and its difference to the first row, the timing pass's step
time and the NAS reward), ``DIR/seeds.csv`` (one line per trained run), ``DIR/verdict.md`` and
``verdict.json`` (the paper's claim the study tests and its verdict: reproduced, contradicted or
inconclusive) and ``DIR/<name>.png``; every trained run is a full training run in
``DIR/runs/<row>/seed<k>`` (checkpoints, metrics.jsonl), and a finished one is read back on a
rerun. ``--config.seeds=N`` trains every row N times (default 3); ``--config.key=value``
overrides any key (``--config.train.num_train_steps=500``). docs/ablations.md has each study's
design, measured verdict and cost.
"""
from __future__ import annotations

import os
import sys

if __name__ == '__main__':  # before jax loads: see effnet_jax/runtime.py
  from effnet_jax.runtime import use_caching_allocator
  use_caching_allocator()

from absl import app, flags, logging

from effnet_jax import cli
from effnet_jax.analysis.run import run_config

PROGRAM = 'effnet_jax.tools.ablate'
_CONFIG = cli.define_config_flag(PROGRAM, None, 'An ablation config (path[:arg]).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for the runs, results.csv and plots.')


def main(argv) -> int:
  del argv  # no positional arguments: cli.flags_parser refuses them
  if _CONFIG.value is None or not _WORKDIR.value:
    cli.exit_on_user_error(PROGRAM, '--config and --workdir are required')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.set_verbosity(logging.WARNING)
  from effnet_jax.data import DataError
  from effnet_jax.train.builders import enable_compilation_cache
  # rows share many programs (a rerun compiles nothing)
  enable_compilation_cache(os.path.join(_WORKDIR.value, 'xla_cache'))
  try:
    run_config(_CONFIG.value, _WORKDIR.value)
  except (DataError, ValueError, FileNotFoundError) as error:
    print(f'{PROGRAM}: error: {error}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=cli.flags_parser(PROGRAM)))
