"""Optimizers against numpy transcriptions of their updates; weight decay; masks; schedules."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from effnet_jax.models import create_model
from effnet_jax.models.utils import abstract_variables
from effnet_jax.train.optim import create_optimizer, learning_rate_schedule, weight_decay_mask

STEPS = 6
# A tree named like our models: a conv kernel, BN scale/bias, a classifier kernel and bias.
SHAPES = {'stem': {'conv': {'kernel': (3, 3, 2, 4)}, 'bn': {'scale': (4,), 'bias': (4,)}},
          'classifier': {'kernel': (4, 3), 'bias': (3,)}}
# True where the 'bn' / 'bn_and_bias' masks decay, in np_leaves order
# (classifier/bias, classifier/kernel, stem/bn/bias, stem/bn/scale, stem/conv/kernel).
DECAYED = {'bn': [True, True, False, False, True], 'bn_and_bias': [False, True, False, False, True]}


def schedule(step):
  """A learning rate that changes every step, so lr placement inside/outside buffers matters."""
  return 0.05 * (1.0 + step) / (1.0 + 0.3 * step)


def make_tree(seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s), jnp.float32), SHAPES,
                      is_leaf=lambda s: isinstance(s, tuple))


def np_leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def run(tx, params, grads):
  """Parameters after each of the updates with ``grads`` (a list of trees)."""
  state = tx.init(params)
  update = jax.jit(tx.update)
  trajectory = []
  for g in grads:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append(np_leaves(params))
  return trajectory


def assert_trajectories_close(actual, expected, rtol=1e-5, atol=1e-6):
  for step_actual, step_expected in zip(actual, expected, strict=True):
    for a, e in zip(step_actual, step_expected, strict=True):
      np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


PARAMS = make_tree(0)
GRADS = [make_tree(i + 1) for i in range(STEPS)]


def tf1_rmsprop(params, grads, decay=0.9, momentum=0.9, eps=1e-3, wd=0.0, decayed=None):
  """tf.compat.v1.train.RMSPropOptimizer (ApplyRMSProp kernel), with the L2 gradient term."""
  w = np_leaves(params)
  decayed = decayed or [True] * len(w)
  ms = [np.ones_like(x) for x in w]
  mom = [np.zeros_like(x) for x in w]
  trajectory = []
  for t, g_tree in enumerate(grads):
    for i, g in enumerate(np_leaves(g_tree)):
      g = g + wd * w[i] * decayed[i]
      ms[i] = ms[i] + (g * g - ms[i]) * (1 - decay)
      mom[i] = momentum * mom[i] + schedule(t) * g / np.sqrt(ms[i] + eps)
      w[i] = w[i] - mom[i]
    trajectory.append([x.copy() for x in w])
  return trajectory


def test_rmsprop_tf_matches_tf1_update():
  tx = create_optimizer('rmsprop_tf', schedule, params=PARAMS)
  assert_trajectories_close(run(tx, PARAMS, GRADS), tf1_rmsprop(PARAMS, GRADS))


@pytest.mark.parametrize('variant', [
    dict(),  # optax's default: mean square from 0
    dict(initial_scale=1.0, eps_in_sqrt=False),  # PyTorch's epsilon outside the root
])
def test_other_rmsprop_variants_differ_from_tf1(variant):
  tx = optax.rmsprop(schedule, decay=0.9, eps=1e-3, momentum=0.9, **variant)
  with pytest.raises(AssertionError):
    assert_trajectories_close(run(tx, PARAMS, GRADS), tf1_rmsprop(PARAMS, GRADS))


@pytest.mark.parametrize('exclude', ['bn', 'bn_and_bias'])
def test_rmsprop_tf_with_coupled_decay_matches_tf1(exclude):
  tx = create_optimizer('rmsprop_tf', schedule, weight_decay=0.1, weight_decay_exclude=exclude)
  expected = tf1_rmsprop(PARAMS, GRADS, wd=0.1, decayed=DECAYED[exclude])
  assert_trajectories_close(run(tx, PARAMS, GRADS), expected)


def test_sgd_nesterov_matches_pytorch_update():
  momentum = 0.9
  w = np_leaves(PARAMS)
  buf = [np.zeros_like(x) for x in w]
  expected = []
  for t, g_tree in enumerate(GRADS):
    for i, g in enumerate(np_leaves(g_tree)):
      buf[i] = momentum * buf[i] + g
      w[i] = w[i] - schedule(t) * (g + momentum * buf[i])
    expected.append([x.copy() for x in w])
  tx = create_optimizer('sgd', schedule, momentum=momentum, nesterov=True)
  assert_trajectories_close(run(tx, PARAMS, GRADS), expected)


def test_adamw_matches_numpy_and_optax_adamw():
  b1, b2, eps, wd = 0.9, 0.99, 1e-3, 0.5
  decayed = DECAYED['bn_and_bias']
  w = np_leaves(PARAMS)
  m = [np.zeros_like(x) for x in w]
  v = [np.zeros_like(x) for x in w]
  expected = []
  for t, g_tree in enumerate(GRADS):
    for i, g in enumerate(np_leaves(g_tree)):
      m[i] = b1 * m[i] + (1 - b1) * g
      v[i] = b2 * v[i] + (1 - b2) * g * g
      m_hat, v_hat = m[i] / (1 - b1 ** (t + 1)), v[i] / (1 - b2 ** (t + 1))
      w[i] = w[i] - schedule(t) * (m_hat / (np.sqrt(v_hat) + eps) + wd * w[i] * decayed[i])
    expected.append([x.copy() for x in w])
  tx = create_optimizer('adamw', schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd,
                        weight_decay_mode='decoupled', weight_decay_exclude='bn_and_bias',
                        params=PARAMS)
  actual = run(tx, PARAMS, GRADS)
  assert_trajectories_close(actual, expected)
  reference = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd,
                          mask=weight_decay_mask(PARAMS, 'bn_and_bias'))
  assert_trajectories_close(actual, run(reference, PARAMS, GRADS))


def test_lars_matches_trust_ratio_transcription():
  lr, momentum, wd, trust = 2.0, 0.9, 0.01, 0.001
  decayed = DECAYED['bn_and_bias']
  w = np_leaves(PARAMS)
  mom = [np.zeros_like(x) for x in w]
  expected = []
  for g_tree in GRADS:
    for i, g in enumerate(np_leaves(g_tree)):
      if decayed[i]:
        g = g + wd * w[i]
        g = g * trust * np.linalg.norm(w[i]) / np.linalg.norm(g)
      mom[i] = momentum * mom[i] + lr * g
      w[i] = w[i] - mom[i]
    expected.append([x.copy() for x in w])
  tx = create_optimizer('lars', lr, momentum=momentum, weight_decay=wd,
                        weight_decay_exclude='bn_and_bias', lars_trust_coefficient=trust)
  assert_trajectories_close(run(tx, PARAMS, GRADS), expected)


def loss(params):
  """A smooth loss with a non-trivial gradient on every leaf."""
  return sum(jnp.sum(jnp.sin(x) * x) for x in jax.tree.leaves(params))


@pytest.mark.parametrize('exclude', ['bn', 'bn_and_bias', 'none'])
def test_coupled_decay_is_the_gradient_of_the_l2_loss_term(exclude):
  wd = 0.3
  mask = weight_decay_mask(PARAMS, exclude)

  def regularised(params):
    l2 = sum(jnp.sum(x * x) for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m)
    return loss(params) + wd * 0.5 * l2

  plain = create_optimizer('rmsprop_tf', schedule)
  coupled = create_optimizer('rmsprop_tf', schedule, weight_decay=wd, weight_decay_exclude=exclude,
                             params=PARAMS)
  expected, _ = plain.update(jax.grad(regularised)(PARAMS), plain.init(PARAMS), PARAMS)
  actual, _ = coupled.update(jax.grad(loss)(PARAMS), coupled.init(PARAMS), PARAMS)
  assert_trajectories_close([np_leaves(actual)], [np_leaves(expected)])


@pytest.mark.parametrize('name', ['sgd', 'rmsprop_tf'])
def test_decoupled_decay_subtracts_lr_wd_w_after_the_update(name):
  wd = 0.2
  plain = create_optimizer(name, schedule)
  decoupled = create_optimizer(name, schedule, weight_decay=wd, weight_decay_mode='decoupled')
  plain_state, decoupled_state = plain.init(PARAMS), decoupled.init(PARAMS)
  params = PARAMS
  for t, g in enumerate(GRADS[:3]):
    base, plain_state = plain.update(g, plain_state, params)
    updates, decoupled_state = decoupled.update(g, decoupled_state, params)
    expected = [u - schedule(t) * wd * w * d
                for u, w, d in zip(np_leaves(base), np_leaves(params), DECAYED['bn'])]
    assert_trajectories_close([np_leaves(updates)], [expected])
    params = optax.apply_updates(params, updates)


def test_grad_clip_applies_to_the_raw_gradient_before_coupled_decay():
  grads = jax.tree.map(lambda x: 10.0 * x, GRADS[0])
  norm = np.sqrt(sum(np.sum(g * g) for g in np_leaves(grads)))
  tx = create_optimizer('sgd', 1.0, momentum=0.0, weight_decay=0.1, weight_decay_exclude='none',
                        grad_clip_norm=1.0)
  updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  expected = [-(g / norm + 0.1 * w) for g, w in zip(np_leaves(grads), np_leaves(PARAMS))]
  assert_trajectories_close([np_leaves(updates)], [expected])


@pytest.mark.parametrize('kwargs, valid', [
    (dict(name='adam'), "['rmsprop_tf', 'sgd', 'adamw', 'lars']"),
    (dict(name='sgd', weight_decay_mode='l2'), "['coupled', 'decoupled']"),
    (dict(name='sgd', weight_decay_exclude='bias'),
     "['bn', 'bn_and_bias', 'norm_bias_and_tables', 'none']"),
])
def test_unknown_choices_list_the_valid_values(kwargs, valid):
  with pytest.raises(ValueError, match=re.escape(valid)):
    create_optimizer(learning_rate=0.1, **kwargs)


def test_unknown_schedule_lists_the_valid_values():
  with pytest.raises(ValueError, match=re.escape("['exponential', 'cosine', 'constant']")):
    learning_rate_schedule('linear', 0.016, 256, 100.0, 1000)


@pytest.mark.parametrize('model_name', ['efficientnet_b0', 'rexnet_100'])
def test_masks_on_real_parameter_trees(model_name):
  params = abstract_variables(create_model(model_name), 32)['params']
  paths = [jax.tree_util.keystr(p, simple=True, separator='/')
           for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  masks = {e: jax.tree.leaves(weight_decay_mask(params, e))
           for e in ('bn', 'bn_and_bias', 'norm_bias_and_tables', 'none')}
  kinds = {'bn': [], 'se_bias': [], 'classifier_bias': [], 'kernel': []}
  for i, path in enumerate(paths):
    if '/bn/' in path:
      kinds['bn'].append(i)
    elif path.endswith('kernel'):
      kinds['kernel'].append(i)
    elif path == 'classifier/bias':
      kinds['classifier_bias'].append(i)
    elif '/se/' in path and path.endswith('bias'):
      kinds['se_bias'].append(i)
  assert all(kinds.values()) and sum(map(len, kinds.values())) == len(paths)
  expected = {'bn': {'bn': False, 'se_bias': True, 'classifier_bias': True, 'kernel': True},
              'bn_and_bias': {'bn': False, 'se_bias': False, 'classifier_bias': False,
                              'kernel': True},
              'none': dict.fromkeys(kinds, True)}
  expected['norm_bias_and_tables'] = expected['bn_and_bias']  # a CNN has no tables
  for exclude, by_kind in expected.items():
    for kind, decayed in by_kind.items():
      assert {masks[exclude][i] for i in kinds[kind]} == {decayed}, (exclude, kind)
  # Both mask forms (fixed from params, or computed from the tree at hand) work on the real tree.
  for mask_params in (params, None):
    tx = create_optimizer('lars', 0.1, weight_decay=1e-5, weight_decay_mode='decoupled',
                          params=mask_params)
    state = jax.eval_shape(tx.init, params)
    updates, _ = jax.eval_shape(tx.update, params, state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)


# The official V1 recipe: 0.016 per 256 images at batch 2048, 1,281,167 images, 350 epochs.
V1 = dict(base_learning_rate=0.016, global_batch_size=2048, steps_per_epoch=1281167 / 2048,
          total_steps=218949)
V1_PEAK = 0.128
V1_WARMUP_STEPS = 3127  # int(5 * 625.57)


def test_v1_exponential_schedule_at_official_steps():
  lr = learning_rate_schedule('exponential', **V1)
  assert float(lr(0)) == 0.0
  half = V1_WARMUP_STEPS // 2  # 1563, already past the first staircase step (1501.4)
  assert float(lr(half)) == pytest.approx(V1_PEAK * half / V1_WARMUP_STEPS, rel=1e-6)
  assert float(lr(half)) != pytest.approx(V1_PEAK * half / V1_WARMUP_STEPS * 0.97, rel=1e-3)
  assert float(lr(V1_WARMUP_STEPS - 1)) == pytest.approx(V1_PEAK * 3126 / 3127, rel=1e-6)
  assert float(lr(V1_WARMUP_STEPS)) == pytest.approx(V1_PEAK * 0.97 ** 2, rel=1e-6)
  assert float(lr(4504)) == pytest.approx(V1_PEAK * 0.97 ** 2, rel=1e-6)  # 3 * 1501.37 = 4504.1
  assert float(lr(4505)) == pytest.approx(V1_PEAK * 0.97 ** 3, rel=1e-6)
  assert float(lr(V1['total_steps'])) == pytest.approx(V1_PEAK * 0.97 ** 145, rel=1e-5)
  # The floor applies after decay: peak * 0.97**145 = 1.55e-3 < 2e-3.
  floored = learning_rate_schedule('exponential', **V1, min_learning_rate=2e-3)
  assert float(floored(V1['total_steps'])) == pytest.approx(2e-3)


def test_schedule_is_float32_under_jit():
  lr = jax.jit(learning_rate_schedule('exponential', **V1))
  value = lr(jnp.asarray(V1_WARMUP_STEPS, jnp.int32))
  assert value.dtype == jnp.float32
  assert float(value) == pytest.approx(V1_PEAK * 0.97 ** 2, rel=1e-6)


def test_cosine_and_constant_schedules():
  common = dict(base_learning_rate=0.5, global_batch_size=512, lr_batch_base=512,
                steps_per_epoch=100.0, total_steps=1000, warmup_epochs=1.0, warmup_init=1e-4)
  cosine = learning_rate_schedule('cosine', **common, min_learning_rate=1e-5)
  assert float(cosine(0)) == pytest.approx(1e-4)
  assert float(cosine(50)) == pytest.approx(1e-4 + (0.5 - 1e-4) * 0.5)
  # After warm-up the cosine is the one counted from step 0 (TF and timm without warmup_prefix).
  assert float(cosine(100)) == pytest.approx(1e-5 + (0.5 - 1e-5) * 0.5 * (1 + np.cos(0.1 * np.pi)))
  assert float(cosine(500)) == pytest.approx((0.5 + 1e-5) / 2)
  assert float(cosine(1000)) == pytest.approx(1e-5)
  assert float(cosine(2000)) == pytest.approx(1e-5)
  constant = learning_rate_schedule('constant', **common)
  assert [float(constant(s)) for s in (0, 50, 100, 999)] == pytest.approx([1e-4, 0.25005, 0.5, 0.5])
  no_warmup = learning_rate_schedule('cosine', **{**common, 'warmup_epochs': 0.0})
  assert float(no_warmup(0)) == pytest.approx(0.5)


@pytest.mark.parametrize('base, batch, batch_base, peak', [
    (0.016, 2048, 256, 0.128),  # V1
    (0.016, 4096, 256, 0.256),  # V2 (and the V1 paper's 0.256)
    (0.5, 512, 512, 0.5),  # ReXNet, lr quoted at batch 512
    (0.5, 1024, 512, 1.0),
])
def test_batch_size_scaling_rule(base, batch, batch_base, peak):
  lr = learning_rate_schedule('constant', base, batch, 100.0, 1000, warmup_epochs=0.0,
                              lr_batch_base=batch_base)
  assert float(lr(10)) == pytest.approx(peak)


def test_swin_mask_spares_norms_biases_and_bias_tables():
  """The official Swin rule: no decay on LayerNorm scales, biases and relative position bias
  tables; every other (2-D or 4-D) kernel decays."""
  model = create_model('swin_tiny_patch4_window7_224', stem_channels=8, depths=(1, 1, 1, 1),
                       num_heads=(1, 1, 2, 2), window_size=2, image_size=32)
  params = abstract_variables(model, 32)['params']
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  mask = jax.tree.leaves(weight_decay_mask(params, 'norm_bias_and_tables'))
  for (path, leaf), decayed in zip(flat, mask):
    name = jax.tree_util.keystr(path, simple=True, separator='/')
    spared = name.endswith(('scale', 'bias', 'relative_position_bias_table'))
    assert decayed == (not spared), name
  assert any(mask) and not all(mask)
