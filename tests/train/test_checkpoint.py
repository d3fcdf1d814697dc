"""effnet_jax/checkpoints.py: which checkpoint-writing failures are storage failures; the run
record saved beside each checkpoint."""
import errno
import json

import pytest

from effnet_jax.checkpoints import CheckpointMismatch, RunRecord, check_same_run, storage_error

# What tensorstore raised when a real 5 MB tmpfs filled up during an Orbax save (abridged).
TENSORSTORE_FULL = ('RESOURCE_EXHAUSTED: Error writing "params.head_conv.conv.kernel/0.0" in OCDBT '
                    'database at local file "/ckpt/checkpoints/2.orbax-checkpoint-tmp/": Failed '
                    "to write 73973 bytes to file 5: No space left on device [os_error_code='28']")


def raised(error, wrapper=None):
  """``error``, raised inside ``wrapper`` (as Orbax re-raises a writer thread's error)."""
  try:
    try:
      raise error
    except Exception as inner:  # pylint: disable=broad-except
      if wrapper is None:
        raise
      raise wrapper from inner
  except Exception as outer:  # pylint: disable=broad-except
    return outer


@pytest.mark.parametrize('error', [
    OSError(errno.ENOSPC, 'No space left on device', '/ckpt/run/metadata'),
    ValueError(TENSORSTORE_FULL),
    ValueError('PERMISSION_DENIED: gs://bucket/ckpt: 403 Forbidden'),
])
def test_storage_failures_are_recognised_also_when_wrapped(error):
  assert storage_error(raised(error)) is error
  assert storage_error(raised(error, RuntimeError('async save failed'))) is error


def test_other_errors_are_not_storage_failures():
  assert storage_error(raised(ValueError('Requested shape (3,) does not match (4,)'))) is None
  assert storage_error(raised(KeyError('params'), RuntimeError('save failed'))) is None


# A run item as the trainer has always saved it (plain JSON).
SAVED_RUN = {'model': 'efficientnet_b0', 'model_overrides': {'width_mult': 0.25},
             'num_classes': 3, 'class_names': ['cat', 'dog', 'owl'], 'image_size': 32,
             'eval_image_size': 36,
             'config': {'model': 'efficientnet_b0', 'seed': 0, 'log_every_steps': 10,
                        'model_overrides': {'width_mult': 0.25, 'bn_eps': None},
                        'schedule': {'epochs': 2, 'warmup_epochs': 0}}}


def test_the_run_record_reads_saved_runs_and_writes_the_same_json():
  record = RunRecord.from_json(SAVED_RUN)
  assert (record.model, record.num_classes, record.image_size, record.eval_image_size) == (
      'efficientnet_b0', 3, 32, 36)
  assert record.to_json() == SAVED_RUN
  assert RunRecord.from_json(json.dumps(record.to_json())) == record
  # a run item without model_overrides or class names: the config's overrides, no names
  bare = {k: v for k, v in SAVED_RUN.items() if k not in ('model_overrides', 'class_names')}
  assert RunRecord.from_json(bare).model_overrides == {'width_mult': 0.25}
  assert RunRecord.from_json(bare).class_names is None


def test_a_resumed_run_is_compared_with_the_saved_record():
  now = RunRecord.from_json(SAVED_RUN)
  changed = json.loads(json.dumps(SAVED_RUN))
  changed['config']['schedule']['epochs'] = 4
  changed['config']['log_every_steps'] = 50  # free to change
  changed = RunRecord.from_json(changed)
  assert check_same_run(SAVED_RUN, now, [], 'w') == []  # a plain saved dict reads as before
  with pytest.raises(CheckpointMismatch, match=r'^w was trained with another run description '
                     r'than this config: schedule.epochs: 2 -> 4. .*--allow_changes='
                     r'schedule.epochs$'):
    check_same_run(now, changed, [], 'w')
  assert check_same_run(now, changed, ['schedule'], 'w') == ['schedule.epochs']
