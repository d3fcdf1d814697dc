"""Evaluate a trained run at several test resolutions (the train/test resolution effect), or any
weights on any labelled data.

  python -m effnet_jax.evaluate --workdir DIR [--image_sizes 224,256,288] [--step N] [--best]
  python -m effnet_jax.evaluate --weights WEIGHTS (--folder DIR | --tfds NAME [--split S]
      [--data_dir D]) [--image_sizes 224,260] [--batch_size B]

``--workdir``: restores a checkpoint of ``DIR`` (the latest; ``--best``: the best by eval/top1;
``--step``) with the run's own config, then evaluates the raw and (if trained) EMA weights on the
whole eval split at every size — resize and centre crop with the model's crop fraction and
interpolation — and prints a table. ``--json`` prints one JSON object per size instead.

``--weights``: a pretrained directory, a training workdir or whatever else
``effnet_jax.pretrained.load_pretrained_with_meta`` reads, evaluated with its own preprocessing
(``effnet_jax.predict``'s: the same input per image) on an image folder (one sub-folder per class,
matched by name to the weights' classes: for ImageNet-1k weights the WordNet ids, as in
``val/n01440764/*.JPEG``) or a TFDS data set's split (default: validation, else test). Prints
top-1/top-5 (percent), loss and image count per size, beside the published top-1 where the weights
carry one; a progress line (images/s, ETA) on stderr.

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
from effnet_jax.train.evaluation import (evaluate_sizes, evaluate_weights, folder_data,
                                         format_rows, format_weight_rows, tfds_data)

PROGRAM = 'effnet_jax.evaluate'

_WORKDIR = flags.DEFINE_string('workdir', None, 'a training run directory')
_WEIGHTS = flags.DEFINE_string('weights', None, 'weights to evaluate on --folder or --tfds: a '
                               'pretrained directory or training workdir')
_FOLDER = flags.DEFINE_string('folder', None, '--weights: an image folder, one sub-folder per '
                              "class named as the weights' classes")
_TFDS = flags.DEFINE_string('tfds', None, '--weights: a prepared TFDS data set')
_SPLIT = flags.DEFINE_string('split', None, '--tfds: the split (default: validation, else test)')
_DATA_DIR = flags.DEFINE_string('data_dir', None, '--tfds: the TFDS data_dir')
_ON_BAD_IMAGE = flags.DEFINE_enum('on_bad_image', 'error', ['error', 'skip'],
                                  '--folder: stop at an unreadable image, or leave it out')
_SIZES = flags.DEFINE_string('image_sizes', '', 'comma-separated eval resolutions (default: the '
                             "run's or the weights' eval size)")
flags.DEFINE_alias('image-sizes', 'image_sizes')  # the spelling of earlier releases
_STEP = flags.DEFINE_integer('step', None, '--workdir: checkpoint step (default: the latest)')
_BEST = flags.DEFINE_boolean('best', False, '--workdir: use the best checkpoint by eval/top1')
_BATCH = flags.DEFINE_integer('batch_size', 0, "eval batch size (default: the run's; with "
                              '--weights 64)')
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


def _check_modes() -> None:
  """One of the two modes, with only its own flags: a one-line user error otherwise."""
  data_flags = [f'--{f.name}' for f in (_FOLDER, _TFDS, _SPLIT, _DATA_DIR) if f.value is not None]
  if _ON_BAD_IMAGE.present:
    data_flags.append('--on_bad_image')
  if _WORKDIR.value is not None and _WEIGHTS.value is not None:
    cli.exit_on_user_error(PROGRAM, '--workdir and --weights exclude each other: evaluate a '
                           'training run on its eval split, or weights on --folder/--tfds data')
  if _WORKDIR.value is not None:
    if data_flags:
      cli.exit_on_user_error(PROGRAM, f'{", ".join(data_flags)}: only with --weights (--workdir '
                             "evaluates on the run's own eval split)")
    cli.check_exists(PROGRAM, '--workdir', _WORKDIR.value)
    return
  if _WEIGHTS.value is None:
    cli.exit_on_user_error(PROGRAM, 'give --workdir (a training run) or --weights (with --folder '
                           'or --tfds)')
  if _STEP.value is not None or _BEST.value:
    cli.exit_on_user_error(PROGRAM, '--step and --best: only with --workdir')
  if (_FOLDER.value is None) == (_TFDS.value is None):
    cli.exit_on_user_error(PROGRAM, '--weights evaluates on --folder DIR or --tfds NAME: give one')
  cli.check_weights(PROGRAM, '--weights', _WEIGHTS.value)
  if _FOLDER.value is not None:
    if _SPLIT.value is not None or _DATA_DIR.value is not None:
      cli.exit_on_user_error(PROGRAM, '--split and --data_dir: only with --tfds')
    cli.check_exists(PROGRAM, '--folder', _FOLDER.value)
  elif _ON_BAD_IMAGE.present:
    cli.exit_on_user_error(PROGRAM, '--on_bad_image: only with --folder')


def main(argv) -> int:
  del argv  # no positional arguments: cli.flags_parser refuses them
  sizes = _image_sizes(_SIZES.value)
  _check_modes()
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.set_verbosity(logging.WARNING)
  from effnet_jax.checkpoints import CheckpointError  # (none restores)
  try:
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value, after_loss='Nothing was written: rerun the same '
                           'command (every process).')
    if _WORKDIR.value is not None:
      rows = evaluate_sizes(_WORKDIR.value, sizes, _STEP.value, _BEST.value, _BATCH.value)
    else:
      data = (folder_data(_FOLDER.value, _ON_BAD_IMAGE.value) if _FOLDER.value is not None
              else tfds_data(_TFDS.value, _SPLIT.value, _DATA_DIR.value))
      rows = evaluate_weights(_WEIGHTS.value, data, sizes, _BATCH.value, progress=True)
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
  elif _WORKDIR.value is not None:
    print(f'{os.path.abspath(_WORKDIR.value)} step {rows[0]["step"]} '
          f'({int(rows[0]["eval/count"])} eval images)')
    print(format_rows(rows))
  else:
    print(_weights_header(rows[0]))
    print(format_weight_rows(rows))
  return 0


def _weights_header(row: dict) -> str:
  """What was evaluated on what, and where the published top-1 comes from."""
  line = f'{row["weights"]} on {row["data"]} ({row["count"]} images)'
  if 'published_top1' in row:
    line += f'; published top-1 {row["published_top1"]:.2f}'
  return line


if __name__ == '__main__':
  with distributed.leave_on_crash():
    app.run(main, flags_parser=cli.flags_parser(PROGRAM))
