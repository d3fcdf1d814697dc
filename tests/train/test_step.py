"""Sharded train step: device-count invariance, BN groups, the gradient trap, eval masking.

Every configuration is trained once (``trained`` is cached) and shared by the tests that read
it: each distinct mesh is one XLA compilation, the slow part of these tests on a CPU."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from effnet_jax.models import build_model, get_model_config
from effnet_jax.train.builders import init_state
from effnet_jax.train.step import (TrainStepConfig, bn_axis_name, global_batch, make_eval_step,
                                   make_mesh, make_train_step, resolve_bn_group_size)
from test_loop import TWO_STAGES  # (compiles in a fraction of the seven-stage time)

# One worker runs the whole module: its tests share cached compiled setups.
pytestmark = pytest.mark.xdist_group('train_step')

NUM_CLASSES = 5
SIZE = 16
LR = 0.01
BATCH = 16


def tiny_model(mesh, **overrides):
  return build_model(get_model_config(
      'efficientnet_b0', num_classes=NUM_CLASSES, width_mult=0.25, depth_mult=0.25,
      drop_path_rate=0.0, dropout_rate=0.0, bn_axis_name=bn_axis_name(mesh),
      depthwise_impl='xla', stages=TWO_STAGES, **overrides))


def batches(n, batch_size=BATCH, seed=0):
  rs = np.random.RandomState(seed)
  return [{'images': rs.randn(batch_size, SIZE, SIZE, 3).astype(np.float32),
           'labels': rs.randint(0, NUM_CLASSES, batch_size).astype(np.int32)} for _ in range(n)]


DATA = batches(4)


@functools.cache
def trained(num_devices, bn_group_size):
  """SGD (momentum 0.9, so the first update is exactly -LR * gradient) over DATA on a
  ``num_devices`` mesh: (losses, [initial state, state after each step], model)."""
  mesh = make_mesh(bn_group_size, jax.devices()[:num_devices])
  model = tiny_model(mesh)
  tx = optax.sgd(LR, momentum=0.9)
  state = jax.jit(lambda: init_state(model, tx, SIZE, 0, ema=True),
                  out_shardings=NamedSharding(mesh, P()))()
  step = make_train_step(mesh, model, tx, lambda s: LR,
                         TrainStepConfig(num_classes=NUM_CLASSES, ema_decay=0.99))
  losses, states = [], [jax.device_get(state)]
  for batch in DATA:
    state, metrics = step(state, global_batch(mesh, batch), jax.random.key(0))
    losses.append(float(metrics['loss']))
    states.append(jax.device_get(state))
  return losses, states, model


def test_fake_devices_available():
  assert jax.device_count() == 4, 'tests/conftest.py must set 4 host devices before jax starts'


def test_one_and_four_devices_agree_with_global_batch_norm():
  losses1, states1, _ = trained(1, 1)
  losses4, states4, _ = trained(4, 4)  # bn_group_size 4 == 0 == all 4 devices
  np.testing.assert_allclose(losses1, losses4, rtol=1e-4)
  for tree in ('params', 'batch_stats', 'ema_params'):
    chex.assert_trees_all_close(getattr(states1[-1], tree), getattr(states4[-1], tree),
                                atol=2e-5, rtol=1e-4)
  assert losses1[-1] < losses1[0]  # it learns


def test_gradient_is_not_multiplied_by_device_count():
  """The first update is -LR * gradient: the same norm on 1 and 4 devices (a pmean added to the
  already-summed gradient would multiply it by 4)."""
  _, states1, _ = trained(1, 1)
  _, states4, _ = trained(4, 4)
  delta = lambda states: jax.tree_util.tree_map(lambda a, b: a - b, states[1].params,
                                                states[0].params)
  norm = lambda t: float(optax.tree.norm(t))
  assert norm(delta(states4)) == pytest.approx(norm(delta(states1)), rel=1e-4)
  assert norm(delta(states1)) > 0


def test_per_device_bn_statistics_match_manual_computation():
  losses4, states4, model = trained(4, 1)
  init = states4[0]
  variables = {'params': init.params, 'batch_stats': init.batch_stats}
  per_device = []
  losses = []
  for shard in np.split(np.arange(BATCH), 4):  # device d holds examples 4d .. 4d+3
    images = DATA[0]['images'][shard]
    logits, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
    per_device.append(updates['batch_stats'])
    targets = optax.smooth_labels(jax.nn.one_hot(DATA[0]['labels'][shard], NUM_CLASSES), 0.1)
    losses.append(float(jnp.mean(optax.softmax_cross_entropy(logits, targets))))
  manual = jax.tree_util.tree_map(lambda *xs: np.mean(xs, axis=0), *per_device)
  chex.assert_trees_all_close(states4[1].batch_stats, manual, rtol=1e-4, atol=1e-6)
  assert losses4[0] == pytest.approx(np.mean(losses), rel=1e-5)
  # ... and differ from statistics over the global batch.
  _, states_global, _ = trained(4, 4)
  diffs = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()),
                                 states4[1].batch_stats, states_global[1].batch_stats)
  assert max(jax.tree_util.tree_leaves(diffs)) > 1e-3


def test_bn_groups_of_two():
  mesh = make_mesh(2, jax.devices())
  assert dict(mesh.shape) == {'data': 2, 'bn': 2} and bn_axis_name(mesh) == 'bn'
  losses, _, _ = trained(4, 2)
  assert all(np.isfinite(losses))
  # Two groups of two: neither per-device nor global statistics.
  stats = lambda g: jax.tree_util.tree_leaves(trained(4, g)[1][1].batch_stats)
  for other in (1, 4):
    assert max(float(np.abs(a - b).max()) for a, b in zip(stats(2), stats(other))) > 1e-4


def test_resolve_bn_group_size():
  assert resolve_bn_group_size(0, 8, 'efficientnet') == 8
  assert resolve_bn_group_size(1, 8, 'efficientnet') == 1
  assert resolve_bn_group_size(None, 8, 'efficientnet') == 1  # V1: per core up to 8 cores
  assert resolve_bn_group_size(None, 1024, 'efficientnet') == 128  # max(8, n // 8)
  assert resolve_bn_group_size(None, 32, 'efficientnetv2') == 8  # min(8, n)
  assert resolve_bn_group_size(None, 4, 'efficientnetv2') == 4
  assert resolve_bn_group_size(None, 4, 'rexnet') == 1
  with pytest.raises(ValueError, match='divide'):
    resolve_bn_group_size(3, 8, 'efficientnet')


def test_eval_step_masks_padding():
  mesh = make_mesh(4)
  model = tiny_model(mesh)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  data = batches(1, batch_size=8)[0]
  mask = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
  eval_step = make_eval_step(mesh, model)
  sums = jax.device_get(eval_step(variables, global_batch(mesh, dict(data, mask=mask))))
  logits = np.asarray(model.apply(variables, data['images'][:5]))
  assert sums['count'] == 5
  assert sums['top1'] == np.sum(np.argmax(logits, -1) == data['labels'][:5])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, data['labels'][:5])
  assert sums['loss'] == pytest.approx(float(np.sum(loss)), rel=1e-5)


@pytest.mark.parametrize('num_devices', [1, 2])
def test_eval_step_in_cpu_chunks_gives_the_whole_batchs_sums(monkeypatch, num_devices):
  from effnet_jax.models import utils
  mesh = make_mesh(1, jax.devices()[:num_devices])
  model = tiny_model(mesh)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  data = batches(1, batch_size=14)[0]
  batch = global_batch(mesh, dict(data, mask=np.r_[np.ones(11), np.zeros(3)].astype(np.float32)))
  whole = jax.device_get(make_eval_step(mesh, model)(variables, batch))
  # 3 images' pixels per chunk: 14 images per device in 5 chunks of 3 (one padding image),
  # or 7 in 3 chunks of 3 (two)
  monkeypatch.setattr(utils, 'CPU_CHUNK_PIXELS', 3 * SIZE * SIZE)
  assert utils.forward_chunk(14 // num_devices, SIZE, SIZE, 'cpu') == 3
  eval_step = make_eval_step(mesh, model)
  assert 'while' in eval_step.lower(variables, batch).as_text()  # lax.map over the chunks
  chunked = jax.device_get(eval_step(variables, batch))
  assert chunked['count'] == whole['count'] == 11
  assert chunked['top1'] == whole['top1'] and chunked['top5'] == whole['top5']
  assert chunked['loss'] == pytest.approx(float(whole['loss']), rel=1e-6)


def test_forward_chunk_and_map_chunks():
  from effnet_jax.models.utils import CPU_CHUNK_PIXELS, forward_chunk, map_chunks
  assert CPU_CHUNK_PIXELS == 8 * 224 * 224
  assert forward_chunk(32, 224, 224, 'cpu') == 8
  assert forward_chunk(50, 224, 224, 'cpu') == 8  # 7 chunks of 8 (6 padding images)
  assert forward_chunk(32, 128, 128, 'cpu') == 16
  assert forward_chunk(128, 32, 32, 'cpu') == 128  # small enough: one pass
  assert forward_chunk(4, 600, 600, 'cpu') == 1
  assert forward_chunk(256, 224, 224, 'gpu') == forward_chunk(256, 224, 224, 'tpu') == 256
  x = jnp.arange(7 * 2.0).reshape(7, 2)
  out = map_chunks(lambda v: {'sum': v.sum(-1), 'twice': 2 * v}, 3, x)
  np.testing.assert_array_equal(out['sum'], x.sum(-1))
  np.testing.assert_array_equal(out['twice'], 2 * x)
  np.testing.assert_array_equal(map_chunks(lambda v: v + 1, 7, x), x + 1)


def test_label_rank_gives_top_ks_hits_without_sorting():
  from effnet_jax.train.step import label_rank
  rng = np.random.default_rng(0)
  for classes in (3, 10, 1000):
    logits = rng.normal(size=(64, classes)).astype(np.float32)
    labels = rng.integers(0, classes, 64)
    rank = np.asarray(label_rank(jnp.asarray(logits), jnp.asarray(labels)))
    top = np.asarray(jax.lax.top_k(logits, min(5, classes))[1])
    np.testing.assert_array_equal(rank < 1, top[:, 0] == labels)
    np.testing.assert_array_equal(rank < 5, (top == labels[:, None]).any(-1))
  tied = jnp.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # ties: the lower class first
  assert list(np.asarray(label_rank(tied, jnp.asarray([1, 0])))) == [1, 0]
  logits = np.zeros((2, 4), np.float32)
  logits[0, 1] = np.nan  # a non-finite label logit is never a hit
  assert list(np.asarray(label_rank(jnp.asarray(logits), jnp.asarray([1, 0])))) == [4, 0]


@pytest.mark.parametrize('name, size, overrides', [
    ('mobilenetv2_100', 32, dict(phi=-12.0)),
    ('resnet50', 32, dict(phi=-14.0, drop_path_rate=0.1)),
], ids=lambda v: v if isinstance(v, str) else '')  # Swin's: tests/models/test_swin.py
def test_one_train_step_of_each_compared_family(name, size, overrides):
  """The networks the papers compare with train through the same sharded step (2 devices, BN
  statistics over both) at tiny size: finite loss, every parameter leaf moves, BN statistics
  follow the batch."""
  mesh = make_mesh(2, jax.devices()[:2])
  model = build_model(get_model_config(name, num_classes=NUM_CLASSES, dropout_rate=0.0,
                                       bn_axis_name=bn_axis_name(mesh), **overrides))
  tx = optax.adam(1e-2)
  state = jax.jit(lambda: init_state(model, tx, size, 0, ema=False),
                  out_shardings=NamedSharding(mesh, P()))()
  before = jax.device_get(state)
  step = make_train_step(mesh, model, tx, lambda s: 1e-2,
                         TrainStepConfig(num_classes=NUM_CLASSES, ema_decay=0.0))
  rs = np.random.RandomState(0)
  batch = {'images': rs.randn(8, size, size, 3).astype(np.float32),
           'labels': rs.randint(0, NUM_CLASSES, 8).astype(np.int32)}
  state, metrics = step(state, global_batch(mesh, batch), jax.random.key(0))
  after = jax.device_get(state)
  assert np.isfinite(float(metrics['loss'])) and int(after.step) == 1
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), before.params, after.params)
  assert all(jax.tree.leaves(moved))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before.batch_stats,
                         after.batch_stats)
  assert jax.tree.leaves(changed) and all(jax.tree.leaves(changed))
