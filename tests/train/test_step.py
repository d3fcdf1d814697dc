"""Sharded train step: device-count invariance, BN groups, the gradient trap, eval masking."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from effnet_jax.models import build_model, get_model_config
from effnet_jax.train.loop import init_state
from effnet_jax.train.step import (TrainStepConfig, bn_axis_name, global_batch, make_eval_step,
                                   make_mesh, make_train_step, resolve_bn_group_size)

NUM_CLASSES = 5
SIZE = 16


def tiny_model(mesh, **overrides):
  return build_model(get_model_config(
      'efficientnet_b0', num_classes=NUM_CLASSES, width_mult=0.25, depth_mult=0.25,
      drop_path_rate=0.0, dropout_rate=0.0, bn_axis_name=bn_axis_name(mesh),
      depthwise_impl='unrolled', **overrides))


def batches(n, batch_size=16, seed=0):
  rs = np.random.RandomState(seed)
  return [{'images': rs.randn(batch_size, SIZE, SIZE, 3).astype(np.float32),
           'labels': rs.randint(0, NUM_CLASSES, batch_size).astype(np.int32)} for _ in range(n)]


def train(num_devices, bn_group_size, data, lr=0.01, ema_decay=0.99):
  mesh = make_mesh(bn_group_size, jax.devices()[:num_devices])
  model = tiny_model(mesh)
  tx = optax.sgd(lr, momentum=0.9)
  state = jax.jit(lambda: init_state(model, tx, SIZE, 0, ema=True),
                  out_shardings=NamedSharding(mesh, P()))()
  step = make_train_step(mesh, model, tx, lambda s: lr,
                         TrainStepConfig(num_classes=NUM_CLASSES, ema_decay=ema_decay))
  losses = []
  for batch in data:
    state, metrics = step(state, global_batch(mesh, batch), jax.random.key(0))
    losses.append(float(metrics['loss']))
  return losses, jax.device_get(state), model


def test_fake_devices_available():
  assert jax.device_count() == 4, 'tests/conftest.py must set 4 host devices before jax starts'


def test_one_and_four_devices_agree_with_global_batch_norm():
  data = batches(4)
  losses1, state1, _ = train(1, 1, data)
  losses4, state4, _ = train(4, 4, data)  # bn_group_size 0 == all 4 devices
  np.testing.assert_allclose(losses1, losses4, rtol=1e-4)
  for tree in ('params', 'batch_stats', 'ema_params'):
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4),
                           getattr(state1, tree), getattr(state4, tree))
  assert losses1[-1] < losses1[0]  # it learns


def test_gradient_is_not_multiplied_by_device_count():
  """One SGD step without momentum: the update equals lr * the single-device gradient."""
  data = batches(1)
  _, state1, model = train(1, 1, data, lr=0.1, ema_decay=0.0)
  _, state4, _ = train(4, 4, data, lr=0.1, ema_decay=0.0)
  init = jax.device_get(jax.jit(lambda: init_state(model, optax.sgd(0.1), SIZE, 0, False))())
  delta1 = jax.tree_util.tree_map(lambda a, b: a - b, state1.params, init.params)
  delta4 = jax.tree_util.tree_map(lambda a, b: a - b, state4.params, init.params)
  norm = lambda t: float(optax.tree.norm(t))
  assert norm(delta4) == pytest.approx(norm(delta1), rel=1e-4)
  assert norm(delta1) > 0


def test_per_device_bn_statistics_match_manual_computation():
  data = batches(1, batch_size=16)
  losses4, state4, model = train(4, 1, data, ema_decay=0.0)
  init = jax.jit(lambda: init_state(model, optax.sgd(0.01), SIZE, 0, False))()
  variables = {'params': init.params, 'batch_stats': init.batch_stats}
  per_device = []
  losses = []
  for shard in np.split(np.arange(16), 4):  # device d holds examples 4d .. 4d+3
    images = data[0]['images'][shard]
    logits, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
    per_device.append(updates['batch_stats'])
    targets = optax.smooth_labels(jax.nn.one_hot(data[0]['labels'][shard], NUM_CLASSES), 0.1)
    losses.append(float(jnp.mean(optax.softmax_cross_entropy(logits, targets))))
  manual = jax.tree_util.tree_map(lambda *xs: np.mean(xs, axis=0), *per_device)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         state4.batch_stats, manual)
  assert losses4[0] == pytest.approx(np.mean(losses), rel=1e-5)
  # ... and differ from statistics over the global batch.
  _, state_global, _ = train(4, 4, data, ema_decay=0.0)
  diffs = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()),
                                 state4.batch_stats, state_global.batch_stats)
  assert max(jax.tree_util.tree_leaves(diffs)) > 1e-3


def test_bn_groups_of_two():
  mesh = make_mesh(2, jax.devices())
  assert dict(mesh.shape) == {'data': 2, 'bn': 2} and bn_axis_name(mesh) == 'bn'
  losses, state, _ = train(4, 2, batches(2))
  assert all(np.isfinite(losses))


def test_resolve_bn_group_size():
  assert resolve_bn_group_size(0, 8, 'efficientnet') == 8
  assert resolve_bn_group_size(1, 8, 'efficientnet') == 1
  assert resolve_bn_group_size(-1, 8, 'efficientnet') == 1  # V1: per core up to 8 cores
  assert resolve_bn_group_size(-1, 1024, 'efficientnet') == 128  # max(8, n // 8)
  assert resolve_bn_group_size(-1, 32, 'efficientnetv2') == 8  # min(8, n)
  assert resolve_bn_group_size(-1, 4, 'efficientnetv2') == 4
  assert resolve_bn_group_size(-1, 4, 'rexnet') == 1
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
