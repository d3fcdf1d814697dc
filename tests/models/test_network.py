"""Module behaviour: init/apply API, features, padding, stochastic depth, residuals, dtypes."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effnet_jax.models import (create_model, decode_arch, extract_features, get_model_config,
                               list_models)
from effnet_jax.models.blocks import BLOCKS
from effnet_jax.models.layers import ConvBN, DepthwiseConv, DropPath, LayerConfig, conv_padding

# One worker runs the whole module: its tests share cached compiled setups.
pytestmark = pytest.mark.xdist_group('network')


@pytest.fixture(scope='module')
def b0_small():
  model = create_model('efficientnet_b0', num_classes=10, width_mult=0.25, depth_mult=0.25)
  images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  variables = jax.jit(lambda x: model.init(jax.random.key(1), x, train=False))(images)
  return model, variables, images


def test_init_apply_api(b0_small):
  model, variables, images = b0_small
  assert set(variables) == {'params', 'batch_stats'}
  logits = jax.jit(model.apply)(variables, images)
  chex.assert_shape(logits, (4, 10))
  train_logits, updates = jax.jit(lambda v, x, k: model.apply(
      v, x, train=True, mutable=['batch_stats'], rngs={'dropout': k}))(
          variables, images, jax.random.key(2))
  chex.assert_shape(train_logits, (4, 10))
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                   variables['batch_stats'], updates['batch_stats'])
  assert all(jax.tree_util.tree_leaves(changed))  # every BN running statistic moved
  with pytest.raises(Exception, match='dropout'):  # stochastic layers need an rng at train time
    jax.eval_shape(lambda v: model.apply(v, images, train=True, mutable=['batch_stats']),
                   variables)


def test_eval_is_deterministic_and_train_is_stochastic(b0_small):
  model, variables, images = b0_small
  evaluate = jax.jit(model.apply)
  np.testing.assert_array_equal(evaluate(variables, images), evaluate(variables, images))
  train = jax.jit(lambda k: model.apply(variables, images, train=True, mutable=['batch_stats'],
                                        rngs={'dropout': k})[0])
  run = lambda seed: train(jax.random.key(seed))
  assert not np.allclose(run(1), run(2))
  np.testing.assert_array_equal(run(3), run(3))


def test_features_per_stage(b0_small):
  model, variables, images = b0_small
  feats = jax.jit(lambda v, x: extract_features(model, v, x))(variables, images)
  assert set(feats) == {'stem', 'head'} | {f'stage{i}' for i in range(1, 8)}  # jit sorts keys
  strides = {k: 32 // v.shape[1] for k, v in feats.items()}
  assert strides == {'stem': 2, 'stage1': 2, 'stage2': 4, 'stage3': 8, 'stage4': 16,
                     'stage5': 16, 'stage6': 32, 'stage7': 32, 'head': 32}
  head = jax.jit(lambda v, f: model.apply(v, f, method='forward_head'))(variables, feats['head'])
  np.testing.assert_allclose(head, jax.jit(model.apply)(variables, images), rtol=1e-5, atol=1e-6)


def test_backbone_without_classifier():
  model = create_model('rexnet_100', num_classes=0, width_mult=0.5)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert 'classifier' not in variables['params']
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 32, 32, 3))), variables)
  assert out.shape == (2, 640)


def test_tf_same_padding_puts_the_extra_pixel_bottom_right():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 1))
  k = jax.random.normal(jax.random.key(1), (3, 3, 1, 1))
  conv = lambda pad: jax.lax.conv_general_dilated(x, k, (2, 2), pad, dimension_numbers=(
      'NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(conv(conv_padding('same', 3, 2)), conv([(0, 1), (0, 1)]), atol=1e-6)
  np.testing.assert_allclose(conv(conv_padding('symmetric', 3, 2)), conv([(1, 1), (1, 1)]),
                             atol=1e-6)
  assert conv_padding('symmetric', 5, 2) == ((2, 2), (2, 2))
  with pytest.raises(ValueError, match='unknown padding'):
    conv_padding('valid', 3, 1)


def test_padding_choice_changes_outputs_not_params():
  images = jax.random.normal(jax.random.key(0), (1, 32, 32, 3))
  same = create_model('efficientnet_b0', width_mult=0.25, depth_mult=0.25, num_classes=3)
  sym = create_model('efficientnet_b0', width_mult=0.25, depth_mult=0.25, num_classes=3,
                     padding='symmetric')
  variables = jax.jit(same.init)(jax.random.key(0), images)
  outputs = [jax.jit(m.apply)(variables, images) for m in (same, sym)]
  assert not np.allclose(*outputs)


def test_drop_path_identity_at_eval_and_keep_probability_at_train():
  x = jnp.ones((20000, 2, 2, 3))
  layer = DropPath(0.3)
  np.testing.assert_array_equal(layer.apply({}, x, train=False), x)
  np.testing.assert_array_equal(DropPath(0.0).apply({}, x, train=True), x)
  y = layer.apply({}, x, train=True, rngs={'dropout': jax.random.key(0)})
  per_sample = np.asarray(y).reshape(len(x), -1)
  kept = per_sample[:, 0] != 0
  assert np.all(per_sample == per_sample[:, :1])  # whole samples are kept or dropped
  np.testing.assert_allclose(per_sample[kept], 1 / 0.7, rtol=1e-6)  # survivors scaled by 1/keep
  assert kept.mean() == pytest.approx(0.7, abs=0.01)


def block_pair(block_string, cin):
  """The same block with and without its residual, sharing parameters."""
  (spec,), = decode_arch([[block_string]], stem_channels=cin, round_channels=False)
  (spec_noskip,), = decode_arch([[block_string + '_noskip']], stem_channels=cin,
                                round_channels=False)
  cls = BLOCKS[spec.block_type]
  return cls(spec), cls(spec_noskip), spec


@pytest.mark.parametrize('block_string, cin', [
    ('ir_r1_k3_s1_e6_c8_se0.25', 8), ('ir_r1_k5_s1_e1_c8_se0.25', 8),
    ('fu_r1_k3_s1_e4_c8', 8), ('fu_r1_k3_s1_e1_c8', 8), ('lb_r1_k3_s1_e6_c12_se1/12', 8)])
def test_residual_adds_input_to_first_input_channels(block_string, cin):
  skip, noskip, spec = block_pair(block_string, cin)
  assert spec.skip
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, cin))
  variables = skip.init(jax.random.key(1), x)
  delta = skip.apply(variables, x) - noskip.apply(variables, x)
  expected = jnp.concatenate([x, jnp.zeros((2, 6, 6, spec.out_channels - cin))], axis=-1)
  np.testing.assert_allclose(delta, expected, atol=1e-5)


def param_tree_shapes(model):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  return jax.tree_util.tree_map(lambda a: a.shape, variables['params'])


def test_block_layouts():
  """Layer names and shapes of one block of each type (the converters' target layout)."""
  v1 = param_tree_shapes(create_model('efficientnet_b0'))
  assert v1['stages_0']['blocks_0']['dw']['conv']['kernel'] == (3, 3, 1, 32)
  assert v1['stages_1']['blocks_0']['expand']['conv']['kernel'] == (1, 1, 16, 96)
  assert v1['stages_1']['blocks_0']['se']['reduce']['kernel'] == (96, 4)
  assert v1['stages_1']['blocks_0']['project']['conv']['kernel'] == (1, 1, 96, 24)
  v2 = param_tree_shapes(create_model('efficientnetv2_s'))
  assert set(v2['stages_0']['blocks_0']) == {'fused'}
  assert v2['stages_1']['blocks_0']['fused']['conv']['kernel'] == (3, 3, 24, 96)
  assert 'se' not in v2['stages_2']['blocks_0'] and 'se' in v2['stages_3']['blocks_0']
  rx = param_tree_shapes(create_model('rexnet_100'))
  assert rx['stages_2']['blocks_0']['se']['reduce']['kernel'] == (228, 19)
  assert set(rx['stages_2']['blocks_0']['se']) == {'reduce', 'bn', 'expand'}


def test_lite_uses_relu6_and_no_se():
  config = get_model_config('efficientnet_lite0')
  assert config.activation == 'relu6'
  assert 'se' not in str(param_tree_shapes(create_model('efficientnet_lite0')))


def test_compute_and_param_dtypes():
  images = jnp.ones((2, 32, 32, 3))
  model = create_model('efficientnetv2_b0', width_mult=0.25, depth_mult=0.25, dtype='bfloat16')
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  chex.assert_type(jax.tree_util.tree_leaves(variables), jnp.float32)
  feats = jax.eval_shape(lambda v: model.apply(v, images, method='forward_features'), variables)
  chex.assert_type(feats['head'], jnp.bfloat16)
  logits = jax.jit(model.apply)(jax.jit(model.init)(jax.random.key(0), images), images)
  chex.assert_type(logits, jnp.float32)
  chex.assert_tree_all_finite(logits)
  model16 = create_model('efficientnetv2_b0', width_mult=0.25, depth_mult=0.25,
                         dtype='bf16', param_dtype='bf16')
  params = jax.eval_shape(model16.init, jax.random.key(0), images)['params']
  chex.assert_type(jax.tree_util.tree_leaves(params), jnp.bfloat16)


def test_metadata():
  v2s = get_model_config('efficientnetv2_s')
  assert (v2s.image_size, v2s.eval_image_size, v2s.crop_mode, v2s.interpolation) == (
      300, 384, 'squash', 'bilinear')
  assert v2s.bn_momentum == 0.9 and v2s.round_limit == 0.0
  b3 = get_model_config('efficientnet_b3')
  assert b3.crop_fraction == pytest.approx(300 / 332) and b3.interpolation == 'bicubic'
  assert (b3.dropout_rate, b3.drop_path_rate, b3.padding) == (0.3, 0.2, 'same')
  rx = get_model_config('rexnet_150')
  assert (rx.padding, rx.bn_eps, rx.drop_path_rate, rx.crop_fraction) == (
      'symmetric', 1e-5, 0.0, 0.875)
  for name in list_models():
    c = get_model_config(name)
    assert c.padding == ('symmetric' if c.family in ('rexnet', 'resnet', 'mobilenetv2') else 'same')
    assert c.image_size <= c.eval_image_size and 0 < c.crop_fraction <= 1


def test_overrides_are_checked():
  with pytest.raises(ValueError, match="did you mean drop_path_rate"):
    create_model('efficientnet_b0', drop_path_rat=0.1)
  with pytest.raises(ValueError, match="unknown model 'efficientnet_b9'.*efficientnet_b"):
    create_model('efficientnet_b9')
  with pytest.raises(ValueError, match='padding'):
    create_model('efficientnet_b0', padding='valid')
  with pytest.raises(ValueError, match='dtype'):
    create_model('efficientnet_b0', dtype='float8')
  assert create_model('efficientnet_b0', num_classes=5).num_classes == 5


def test_modules_are_plain_flax():
  assert isinstance(create_model('efficientnet_b0'), nn.Module)


@pytest.mark.parametrize('padding', ['same', 'symmetric'])
@pytest.mark.parametrize('size, kernel_size, stride', [(8, 3, 1), (8, 3, 2), (7, 5, 2), (9, 5, 1),
                                                       (6, 3, 2), (1, 5, 1), (2, 5, 1), (2, 5, 2),
                                                       (1, 3, 1), (3, 5, 2)])
def test_unrolled_depthwise_equals_grouped_conv(padding, size, kernel_size, stride):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 5))
  make = lambda impl: DepthwiseConv(kernel_size, stride, LayerConfig(padding=padding,
                                                                    depthwise_impl=impl))
  variables = make('xla').init(jax.random.key(1), x)

  def loss(impl):
    return lambda v, x: jnp.sum(jnp.sin(make(impl).apply(v, x)))

  for impl in ('unrolled', 'auto'):
    np.testing.assert_allclose(make(impl).apply(variables, x), make('xla').apply(variables, x),
                               rtol=1e-5, atol=1e-5)
    grads = jax.grad(loss(impl), argnums=(0, 1))(variables, x)
    ref = jax.grad(loss('xla'), argnums=(0, 1))(variables, x)
    chex.assert_trees_all_close(grads, ref, rtol=1e-4, atol=1e-5)


def test_pointwise_gradient_rule_equals_jaxs_alone_and_inside_shard_map():
  """layers.pointwise's kernel gradient, (g^T x)^T, is JAX's own x^T g; inside shard_map the
  replicated kernel's gradient is summed over the mesh as JAX's rule sums it."""
  from jax.sharding import Mesh, PartitionSpec as P

  from effnet_jax.models.layers import _channels_dot, pointwise
  x = jax.random.normal(jax.random.key(0), (4, 5, 5, 6))
  w = jax.random.normal(jax.random.key(1), (6, 3))
  grad = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))
  chex.assert_trees_all_close(grad(pointwise)(x, w), grad(_channels_dot)(x, w), rtol=1e-5,
                              atol=1e-6)
  mesh = Mesh(np.array(jax.devices()[:2]), ('d',))
  sharded = lambda f: jax.jit(jax.shard_map(grad(f), mesh=mesh, in_specs=(P('d'), P()),
                                            out_specs=(P('d'), P())))
  ours, reference = sharded(pointwise)(x, w), sharded(_channels_dot)(x, w)
  chex.assert_trees_all_close(ours, reference, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(ours[1], grad(_channels_dot)(x, w)[1], rtol=1e-5, atol=1e-5)


def test_taps_that_read_only_padding_are_left_out():
  from effnet_jax.models.layers import live_taps
  assert live_taps(1, 5, 1, (2, 2)) == [2]  # a 1x1 map: the centre tap only
  assert live_taps(2, 5, 1, (2, 2)) == [1, 2, 3]
  assert live_taps(2, 5, 2, (1, 2)) == [1, 2]  # TF SAME, stride 2
  assert live_taps(8, 3, 1, (1, 1)) == [0, 1, 2]
  assert live_taps(9, 5, 2, (2, 2)) == [0, 1, 2, 3, 4]


def test_renamed_metadata_fields_name_their_new_spelling_and_old_saved_ones_still_read():
  from effnet_jax.models.registry import renamed_fields
  with pytest.raises(ValueError, match="model override 'train_size' is now 'image_size'"):
    get_model_config('efficientnet_b0', train_size=64)
  assert renamed_fields({'train_size': 64, 'eval_size': 72, 'padding': 'same'}) == {
      'image_size': 64, 'eval_image_size': 72, 'padding': 'same'}


@pytest.mark.parametrize('padding', ['same', 'symmetric'])
@pytest.mark.parametrize('cin, kernel_size, stride', [(3, 3, 2), (3, 3, 1), (2, 5, 2), (1, 3, 2),
                                                      (8, 1, 1)])
def test_dot_convs_equal_xlas_convolution(padding, cin, kernel_size, stride):
  """conv_impl='dot': a 1x1 conv as a matrix product, a few-tap conv (the stems) as broadcast
  multiply-adds; the same parameters and sums as nn.Conv, forward and backward."""
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, cin))
  make = lambda impl: ConvBN(6, kernel_size, stride, layers=LayerConfig(padding=padding,
                                                                          conv_impl=impl))
  variables = make('xla').init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, make('dot').init(jax.random.key(1), x)) == jax.tree.map(
      jnp.shape, variables)
  chex.assert_trees_all_equal(make('dot').init(jax.random.key(1), x), variables)  # same init

  def loss(impl):
    return lambda v, x: jnp.sum(jnp.sin(make(impl).apply(v, x)))

  for impl in ('dot', 'auto'):
    np.testing.assert_allclose(make(impl).apply(variables, x), make('xla').apply(variables, x),
                               rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(jax.grad(loss(impl), argnums=(0, 1))(variables, x),
                                jax.grad(loss('xla'), argnums=(0, 1))(variables, x),
                                rtol=1e-4, atol=1e-5)


def test_dot_convs_keep_params_macs_and_outputs_of_a_network():
  from effnet_jax.models import create_model
  from effnet_jax.models.utils import profile
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  xla, dot = (create_model('efficientnet_b0', phi=-8.0, conv_impl=impl) for impl in ('xla', 'dot'))
  variables = xla.init(jax.random.key(1), x, train=False)
  np.testing.assert_allclose(dot.apply(variables, x), xla.apply(variables, x), rtol=1e-4,
                             atol=1e-5)
  assert profile(dot, 64)[1] == profile(xla, 64)[1]
  with pytest.raises(ValueError, match='conv_impl'):
    create_model('efficientnet_b0', conv_impl='matmul')
