"""Which checkpoint-writing failures are storage failures (effnet_jax/checkpoints.py)."""
import errno

import pytest

from effnet_jax.checkpoints import storage_error

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
