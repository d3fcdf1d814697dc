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


def test_small_replicated_arrays_are_saved_whole_and_large_ones_by_every_replica(tmp_path):
  """Orbax's replica-parallel save slices each replicated array over its replicas, one traced
  device op per slice: for the small arrays of a train state that cost seconds on the first save.
  Below MIN_REPLICA_SLICE_BYTES per slice an array is written whole; above it, sliced."""
  import collections

  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  from jax.sharding import Mesh, NamedSharding, PartitionSpec

  from effnet_jax.checkpoints import MIN_REPLICA_SLICE_BYTES, item_handlers

  devices = jax.devices()
  assert len(devices) == 4  # the suite's fake devices (tests/conftest.py)
  replicated = NamedSharding(Mesh(np.array(devices), ('data',)), PartitionSpec())
  rng = np.random.default_rng(0)

  def save(state, directory):
    traces = collections.Counter()

    def listen(name, secs, **kw):
      del secs, kw
      traces.update([name])
    jax.monitoring.register_event_duration_secs_listener(listen)
    manager = ocp.CheckpointManager(str(directory), item_handlers=item_handlers())
    try:
      manager.save(0, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
      manager.wait_until_finished()
      abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                             sharding=x.sharding), state)
      restored = manager.restore(0, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))['state']
    finally:
      manager.close()
      jax.monitoring.unregister_event_duration_listener(listen)
    for key, value in state.items():
      np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(value))
    return traces['/jax/core/compile/jaxpr_trace_duration']

  # shapes no other test saves, so no op is already traced
  small = {f'w{i}': jax.device_put(rng.normal(size=(4, 1009 + i)).astype(np.float32), replicated)
           for i in range(6)}
  assert save(small, tmp_path / 'small') == 0
  rows = 4 * (MIN_REPLICA_SLICE_BYTES // (4 * 1013) + 1)  # 4 equal slices, each > the minimum
  large = {'big': jax.device_put(rng.normal(size=(rows, 1013)).astype(np.float32), replicated)}
  assert save(large, tmp_path / 'large') >= 2  # sliced: each replica writes its part


def test_the_array_handler_is_registered_without_a_warning(caplog, monkeypatch):
  """Registering the thresholded ArrayHandler replaces Orbax's own on purpose: Orbax's warning
  about the override would otherwise be in the log of every run."""
  import logging

  import jax
  import orbax.checkpoint as ocp

  from effnet_jax import checkpoints

  monkeypatch.setattr(checkpoints, '_array_handler', None)  # register it again
  with caplog.at_level(logging.DEBUG):
    checkpoints.item_handlers()
  assert ocp.type_handlers.get_type_handler(jax.Array) is checkpoints._array_handler
  assert [r.getMessage() for r in caplog.records if 'Type handler registry' in r.getMessage()] == []
  with caplog.at_level(logging.DEBUG):  # other warnings of the same logger still get through
    logging.getLogger('absl').warning('Type handler registry: another message')
  assert caplog.records[-1].getMessage() == 'Type handler registry: another message'
