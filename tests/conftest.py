"""Test-suite set-up: CPU only with 4 fake devices, quiet TensorFlow, full-precision matmuls."""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ['XLA_FLAGS'] = ' '.join(
    [os.environ.get('XLA_FLAGS', ''), '--xla_force_host_platform_device_count=4']).strip()

# One persistent XLA compilation cache for the whole session, shared with the subprocesses the
# tests start (through the environment): the trainer tests build the same tiny programs again and
# again (a fresh run, its resumed twin, the reference run of a SIGKILL test), and on a 2-core CI
# machine compiling them dominates the suite. Compile events are still logged and counted.
_XLA_CACHE = tempfile.mkdtemp(prefix='effnet_jax_tests_xla_cache_')
os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '-1'

import jax  # noqa: E402  (after the environment above)

jax.config.update('jax_default_matmul_precision', 'highest')
jax.config.update('jax_compilation_cache_dir', _XLA_CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)


import pytest  # noqa: E402


@pytest.fixture(scope='session')
def embedded_data_dir(tmp_path_factory):
  """A TFDS data_dir with fashion_mnist_local prepared from the Debian files (once per session)."""
  from effnet_jax.data import embedded
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  embedded.fashion_mnist_builder(data_dir)
  return data_dir


@pytest.fixture
def mock_tfds(tmp_path):
  """mock_tfds({name: splits}, num_examples) -> context manager yielding a data_dir in which
  those TFDS data sets are mocked (``tfds.testing.mock_data``) with num_examples per split."""
  import contextlib

  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import naming

  @contextlib.contextmanager
  def mock(datasets, num_examples):
    for name, splits in datasets.items():
      builder = tfds.builder(name, data_dir=str(tmp_path))
      builder.info.set_splits(tfds.core.SplitDict([
          tfds.core.SplitInfo(name=split, shard_lengths=[num_examples], num_bytes=0,
                              filename_template=naming.ShardedFileTemplate(
                                  data_dir=builder.data_dir, dataset_name=name, split=split,
                                  filetype_suffix='tfrecord'))
          for split in splits]))
      os.makedirs(builder.data_dir, exist_ok=True)
      builder.info.write_to_directory(builder.data_dir)
    with tfds.testing.mock_data(num_examples=num_examples, data_dir=str(tmp_path),
                                policy=tfds.testing.MockPolicy.USE_FILES):
      yield str(tmp_path)

  return mock
