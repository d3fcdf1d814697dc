"""Train and evaluate a model from an ml_collections config.

  python -m effnet_jax.main                                   # the embedded default job
  python -m effnet_jax.main --config configs/efficientnet.py:variant=b0,data=imagenet \\
      --workdir gs://bucket/b0 --config.data.manual_dir=/data/imagenet

``--config.key=value`` overrides any config key; configs are locked, so an unknown key (on the
command line or in the config file) is an error naming the closest valid one. A bad command line
or config file is one line on stderr and exit status 2 (effnet_jax/cli.py); a failure during the
run, its error and exit status 1. A workdir with checkpoints is resumed.

Multi-process runs (TPU pods, GPU clusters, N processes on one machine) start the same command in
every process; effnet_jax/distributed.py says when ``jax.distributed.initialize`` is called and
launch/ has the scripts (docs/launch.md)::

  python -m effnet_jax.main --coordinator_address=10.0.0.1:8476 --num_processes=2 --process_id=0
"""
from __future__ import annotations

import os
import sys

if __name__ == '__main__':  # before jax loads: see effnet_jax/runtime.py
  from effnet_jax.runtime import use_caching_allocator
  use_caching_allocator()

from absl import app, flags, logging

from effnet_jax import cli, distributed  # (no jax import: keeps --help fast)
from effnet_jax.config import shipped_configs

PROGRAM = 'effnet_jax'
DEFAULT_CONFIG = os.path.join(shipped_configs(), 'default.py')

_CONFIG = cli.define_config_flag(PROGRAM, DEFAULT_CONFIG, 'Config file (path[:arg]).')
_WORKDIR = flags.DEFINE_string('workdir', os.path.join('workdirs', 'default'),
                               'Directory for checkpoints and metrics (resumed if it has any); '
                               'shared storage for a multi-host run.')
_ALLOW_CHANGES = flags.DEFINE_list(
    'allow_changes', [], 'Config keys (or sections such as schedule, or all) in which a resumed '
    "run may differ from its checkpoint's run description, e.g. num_epochs for a longer run.")
_DISTRIBUTED, _COORDINATOR, _NUM_PROCESSES, _PROCESS_ID = distributed.define_flags(__name__)


def main(argv) -> int:
  del argv  # no positional arguments: cli.flags_parser refuses them
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
  from effnet_jax.checkpoints import CheckpointError
  from effnet_jax.data import DataError
  from effnet_jax.train.loop import train_and_evaluate
  from effnet_jax.train.metrics import MetricsError
  try:
    distributed.initialize(
        _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
        after_loss=f'The last complete checkpoint in {_WORKDIR.value} is kept: rerunning the same '
                   'command (every process) resumes from it.')
    train_and_evaluate(_CONFIG.value, _WORKDIR.value, _ALLOW_CHANGES.value)
  except (DataError, ValueError, FloatingPointError, CheckpointError, MetricsError) as error:
    # Bad input (config, cluster, data, checkpoint), a diverged run or a full disk: the message
    # says what to do.
    if flags.FLAGS['verbosity'].present:
      raise
    print(f'{PROGRAM}: error: {error}\n(--verbosity=0 shows the traceback)', file=sys.stderr)
    distributed.leave(1)  # the other processes of a multi-process run stop when this one is gone
    return 1
  return 0


if __name__ == '__main__':
  with distributed.leave_on_crash():
    sys.exit(app.run(main, flags_parser=cli.flags_parser(PROGRAM)))
