"""Test-suite set-up: CPU only with 4 fake devices, quiet TensorFlow, full-precision matmuls,
XLA's backend optimizations off."""
import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# XLA's backend optimizations off unless the caller sets them: the suite's programs are tiny and
# compiling dominates it (the trainer tests ran about 20 % faster, the same assertions)
_FLAGS = [os.environ.get('XLA_FLAGS', ''), '--xla_force_host_platform_device_count=4']
if '--xla_backend_optimization_level' not in _FLAGS[0]:
  _FLAGS.append('--xla_backend_optimization_level=0')
os.environ['XLA_FLAGS'] = ' '.join(_FLAGS).strip()


def _session_dir(variable: str, prefix: str) -> str:
  """A temporary directory for the whole session, shared with the pytest-xdist workers and the
  subprocesses the tests start through the environment ``variable``: the controller creates it
  when it imports this file (before the workers start) and removes it at exit; the others
  inherit it."""
  if variable not in os.environ:
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, os.environ[variable], ignore_errors=True)
  return os.environ[variable]


# One persistent XLA compilation cache for the whole session: the trainer tests build the same
# tiny programs again and again (a fresh run, its resumed twin, the reference run of a SIGKILL
# test), and on a 2-core CI machine compiling them dominates the suite. Compile events are still
# logged and counted.
_XLA_CACHE = _session_dir('EFFNET_JAX_TEST_XLA_CACHE', 'effnet_jax_tests_xla_cache_')
os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '-1'

# torch's CUDA wheels bring Triton, which torchvision (through torch._dynamo) imports; Triton's
# bundled LLVM segfaults the process when TensorFlow's is already loaded (any test module may
# have imported TensorFlow before tests/tools/test_convert.py imports timm). The CPU tests never
# use Triton, so it is made unimportable; torch then runs without it.
sys.modules.setdefault('triton', None)

import jax  # noqa: E402  (after the environment above)

jax.config.update('jax_default_matmul_precision', 'highest')
jax.config.update('jax_compilation_cache_dir', _XLA_CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)

# Likewise one embedded data set, prepared once for the session (see embedded_data_dir).
_DATA = _session_dir('EFFNET_JAX_TEST_DATA', 'effnet_jax_tests_data_')


import pytest  # noqa: E402


def built_once(name: str, build):
  """``build(directory)``'s result (JSON), computed by the first pytest-xdist worker that asks
  and read back by the others, which wait meanwhile (a session fixture is built once per
  worker). ``directory`` lies in the session's data directory and lives as long as the session."""
  import fcntl
  import json
  directory = os.path.join(_DATA, name)
  with open(directory + '.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    done = os.path.join(directory, 'built.json')
    if not os.path.exists(done):
      os.makedirs(directory, exist_ok=True)
      result = build(directory)
      with open(done, 'w') as f:
        json.dump(result, f)
    with open(done) as f:
      return json.load(f)


def pytest_collection_modifyitems(config, items):
  """The modules with a test marked ``long`` (about half a minute or more on a 2-core machine)
  run first, each module's tests together and in order: pytest-xdist hands out work in
  collection order, so the longest start first and the workers end together, instead of one
  late long test ending the run alone (longest-first scheduling)."""
  first = {item.path for item in items if item.get_closest_marker('long')}
  items.sort(key=lambda item: item.path not in first)


def pytest_xdist_auto_num_workers(config):
  """``-n auto`` (pyproject's addopts): one worker per core, at most 4 — every worker holds
  TensorFlow, JAX and torch (2-3 GB), and XLA's CPU thread pool already uses all cores."""
  del config
  return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.fixture(scope='session')
def embedded_data_dir():
  """A TFDS data_dir with fashion_mnist_local prepared from the Debian files, once for the whole
  session: the first pytest-xdist worker to ask prepares it (half a minute) while the others
  wait on the lock. Tests only read it."""
  import fcntl

  from effnet_jax.data import embedded
  data_dir = os.path.join(_DATA, 'tfds')
  with open(os.path.join(_DATA, 'tfds.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
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


TINY = {'efficientnet_b0': dict(phi=-12.0),  # 42 px, 191k parameters with 1000 classes
        'efficientnetv2_b0': dict(width_mult=0.25, depth_mult=0.25, image_size=48,
                                  eval_image_size=48),  # fused and SE stages, one block each
        'rexnet_100': dict(width_mult=0.5, depth_mult=0.3, image_size=64, eval_image_size=64)}


@pytest.fixture(scope='session')
def tiny_backbone():
  """tiny_backbone(model, **shape) -> variables of the TINY ``model`` (with the model overrides
  ``shape``, e.g. fewer stages) without classifier: random weights
  (kernels normal / sqrt(fan-in), drawn with numpy: model.init compiles for half a minute on a
  busy 2-core machine) and the BN statistics of a batch of random images (one train-mode pass
  with momentum 0), so activations are O(1) as in a trained network. One per session."""
  import numpy as np

  from effnet_jax.models import build_model, get_model_config
  cache = {}

  def make(model='efficientnet_b0', **shape):
    key = (model, repr(sorted(shape.items())))
    if key not in cache:
      config = get_model_config(model, **TINY[model], **shape, num_classes=0, bn_momentum=0.0,
                                drop_path_rate=0.0, dropout_rate=0.0)
      network = build_model(config)
      rng = np.random.default_rng(0)
      images = rng.normal(size=(16, config.eval_image_size, config.eval_image_size, 3)).astype(np.float32)
      shapes = jax.eval_shape(lambda: network.init(jax.random.key(0), images[:1], train=False))
      params = jax.tree_util.tree_map_with_path(
          lambda path, leaf: random_weight(rng, leaf.shape, path), shapes['params'])
      _, updates = jax.jit(lambda v, x: network.apply(v, x, train=True,
                                                      mutable=['batch_stats']))(
          {'params': params}, images)
      cache[key] = {'params': params, 'batch_stats': jax.device_get(updates['batch_stats'])}
    return cache[key]

  return make


def random_weight(rng, shape, path=()):
  """Kernels normal / sqrt(fan-in); BN scales 1; biases 0."""
  import numpy as np
  if len(shape) >= 2:
    return (rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32)
  return np.full(shape, bool(path) and path[-1].key == 'scale', np.float32)


@pytest.fixture
def tiny_pretrained(tmp_path, tiny_backbone):
  """tiny_pretrained(num_classes, class_names=None, name='weights', model='efficientnet_b0',
  shape=None, source=None, **overrides) -> a save_pretrained directory of the tiny backbone
  (built with the model overrides ``shape``, see tiny_backbone) with a random classifier (logits
  O(1)) and the meta ``source`` (default ``{'framework': 'test'}``); overrides must keep the
  shapes (crop_fraction, interpolation, ...)."""
  import numpy as np

  from effnet_jax.pretrained import save_pretrained

  def make(num_classes=1000, class_names=None, name='weights', model='efficientnet_b0',
           shape=None, source=None, **overrides):
    shape = shape or {}
    backbone = tiny_backbone(model, **shape)
    rng = np.random.default_rng(0)
    head = backbone['params']['head_conv']['conv']['kernel'].shape[-1]
    classifier = {'kernel': 4 * random_weight(rng, (head, num_classes)),
                  'bias': random_weight(rng, (num_classes,))}
    variables = dict(backbone, params=dict(backbone['params'], classifier=classifier))
    return save_pretrained(str(tmp_path / name), model, variables,
                           dict(TINY[model], **shape, num_classes=num_classes, **overrides),
                           source=source or {'framework': 'test'}, class_names=class_names)

  return make
