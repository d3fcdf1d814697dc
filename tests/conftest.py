"""Test-suite set-up: CPU only with 4 fake devices, quiet TensorFlow, full-precision matmuls."""
import os
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ['XLA_FLAGS'] = ' '.join(
    [os.environ.get('XLA_FLAGS', ''), '--xla_force_host_platform_device_count=4']).strip()

# torch's CUDA wheels bring Triton, which torchvision (through torch._dynamo) imports; Triton's
# bundled LLVM segfaults the process when TensorFlow's is already loaded (any test module may
# have imported TensorFlow before tests/tools/test_convert.py imports timm). The CPU tests never
# use Triton, so it is made unimportable; torch then runs without it.
sys.modules.setdefault('triton', None)

import jax  # noqa: E402  (after the environment above)

jax.config.update('jax_default_matmul_precision', 'highest')


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
