"""Evaluate a trained run at several test resolutions (the train/test resolution effect).

  python -m effnet_jax.evaluate --workdir DIR [--image_sizes 224,256,288] [--step N] [--best]

Restores a checkpoint of ``DIR`` (the latest; ``--best``: the best by eval/top1; ``--step``) with
the run's own config, then evaluates the raw and (if trained) EMA weights on the whole eval split
at every size — resize and centre crop with the model's crop fraction and interpolation — and
prints a table. ``--json`` prints one JSON object per size instead.

On several hosts (a TPU pod: ``launch/tpu_pod.sh evaluate -- --workdir gs://...``; N local
processes: ``launch/local_multiprocess.sh -m effnet_jax.evaluate -- --workdir DIR``) every
process runs this command and reads its share of the eval split; process 0 prints. The
multi-process flags are main's (effnet_jax/distributed.py).
"""
from __future__ import annotations

import json
import os
import sys

if __name__ == '__main__':  # before jax loads: see effnet_jax/runtime.py
  from effnet_jax.runtime import use_caching_allocator
  use_caching_allocator()

from absl import app, flags, logging

from effnet_jax import cli, distributed
from effnet_jax.train.evaluation import evaluate_sizes, format_rows

PROGRAM = 'effnet_jax.evaluate'

_WORKDIR = flags.DEFINE_string('workdir', None, 'a training run directory', required=True)
_SIZES = flags.DEFINE_string('image_sizes', '', 'comma-separated eval resolutions (default: the '
                             "run's eval size)")
flags.DEFINE_alias('image-sizes', 'image_sizes')  # the spelling of earlier releases
_STEP = flags.DEFINE_integer('step', None, 'checkpoint step (default: the latest)')
_BEST = flags.DEFINE_boolean('best', False, 'use the best checkpoint by eval/top1')
_BATCH = flags.DEFINE_integer('batch_size', 0, 'eval batch size (default: the run\'s)')
_JSON = flags.DEFINE_boolean('json', False, 'one JSON object per size')
# A multi-process evaluation (every host of a TPU pod, launch/tpu_pod.sh evaluate): as in main.
_DISTRIBUTED, _COORDINATOR, _NUM_PROCESSES, _PROCESS_ID = distributed.define_flags(__name__)


def _image_sizes(text: str) -> list[int] | None:
  try:
    sizes = [int(s) for s in text.split(',') if s.strip()]
  except ValueError:
    cli.exit_on_user_error(PROGRAM, f'--image_sizes={text}: not comma-separated integers')
  if any(size < 1 for size in sizes):
    cli.exit_on_user_error(PROGRAM, f'--image_sizes={text}: sizes must be >= 1')
  return sizes or None


def main(argv) -> int:
  del argv  # no positional arguments: cli.flags_parser refuses them
  sizes = _image_sizes(_SIZES.value)
  cli.check_exists(PROGRAM, '--workdir', _WORKDIR.value)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.set_verbosity(logging.WARNING)
  from effnet_jax.checkpoints import CheckpointError  # (none restores)
  try:
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value, after_loss='Nothing was written: rerun the same '
                           'command (every process).')
    rows = evaluate_sizes(_WORKDIR.value, sizes, _STEP.value, _BEST.value, _BATCH.value)
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    print(f'{PROGRAM}: error: {error}', file=sys.stderr)
    distributed.leave(1)
    return 1
  import jax
  if jax.process_index() != 0:  # every process evaluates its share; process 0 prints the table
    return 0
  if _JSON.value:
    for row in rows:
      print(json.dumps(row))
  else:
    print(f'{os.path.abspath(_WORKDIR.value)} step {rows[0]["step"]} '
          f'({int(rows[0]["eval/count"])} eval images)')
    print(format_rows(rows))
  return 0


if __name__ == '__main__':
  with distributed.leave_on_crash():
    app.run(main, flags_parser=cli.flags_parser(PROGRAM))
