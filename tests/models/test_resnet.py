"""The ResNet family: compound scaling through decode_arch, timm's drop-path rule, the D variant,
MACs against timm's published figure, backbone levels (parity with timm: tests/tools/
test_convert.py)."""
import jax
import jax.numpy as jnp
import pytest

from effnet_jax.models import count_macs, create_model, feature_info, get_model_config
from effnet_jax.models.utils import abstract_variables


def widths_and_repeats(config):
  return [(len(stage), stage[0].out_channels) for stage in config.resolved_arch()]


def test_width_one_is_the_published_layout():
  r50 = get_model_config('resnet50')
  assert r50.resolved_stem_channels() == 64 and r50.resolved_head_channels() == 0
  assert widths_and_repeats(r50) == [(3, 256), (4, 512), (6, 1024), (3, 2048)]
  assert [s.skip for s in r50.resolved_arch()[0]] == [False, True, True]  # projection first
  assert [stage[0].stride for stage in r50.resolved_arch()] == [1, 2, 2, 2]
  params = abstract_variables(create_model('resnet50'), 32)['params']
  block = params['stages_1']['blocks_0']
  assert block['conv1']['conv']['kernel'].shape == (1, 1, 256, 128)  # inner = out / 4
  assert block['conv2']['conv']['kernel'].shape == (3, 3, 128, 128)  # the stride is here
  assert block['downsample']['conv']['kernel'].shape == (1, 1, 256, 512)
  assert params['stem']['conv1']['conv']['kernel'].shape == (7, 7, 3, 64)


def test_compound_scaling_rounds_like_efficientnet():
  """phi = 1: widths x 1.1 rounded to multiples of 8 (output widths; the bottleneck's inner
  width is the rounded output / 4), repeats ceil(1.2 r), the stem scaled, sizes x 1.15."""
  c = get_model_config('resnet50', phi=1)
  assert (c.width_mult, c.depth_mult) == (pytest.approx(1.1), pytest.approx(1.2))
  assert (c.image_size, c.eval_image_size) == (258, 258)
  assert c.resolved_stem_channels() == 72
  assert widths_and_repeats(c) == [(4, 280), (5, 560), (8, 1128), (4, 2256)]
  params = abstract_variables(create_model('resnet50', phi=1), 32)['params']
  assert params['stages_0']['blocks_0']['conv1']['conv']['kernel'].shape == (1, 1, 72, 70)
  assert params['stages_3']['blocks_3']['conv3']['conv']['kernel'].shape == (1, 1, 564, 2256)
  assert widths_and_repeats(get_model_config('resnet18', phi=1)) == [
      (3, 72), (3, 144), (3, 280), (3, 560)]
  d = get_model_config('resnet50d', width_mult=0.5, depth_mult=0.5)
  assert d.resolved_stem_channels() == 32
  assert widths_and_repeats(d) == [(2, 128), (2, 256), (3, 512), (2, 1024)]
  stem = abstract_variables(create_model('resnet50d', width_mult=0.5), 32)['params']['stem']
  assert [stem[k]['conv']['kernel'].shape[-1] for k in ('conv1', 'conv2', 'conv3')] == [16, 16, 32]


def test_drop_path_rates_follow_timm():
  """timm resnet.py: block i of N drops with rate * i / (N - 1) (the last one with the rate)."""
  rates = [s.drop_path_rate for stage in get_model_config(
      'resnet18', drop_path_rate=0.1).resolved_arch() for s in stage]
  assert rates == pytest.approx([0.1 * i / 7 for i in range(8)])


def test_macs_match_timms_published_figure():
  assert round(count_macs(create_model('resnet50'), 224) / 1e9, 1) == 4.1  # timm: 4.1 GMACs
  # ResNet-D's deep stem and average-pool shortcuts: 4.3 GFLOPs (Bag of Tricks, Table 5)
  assert round(count_macs(create_model('resnet50d'), 224) / 1e9, 1) == 4.3


def test_backbone_levels_and_maps():
  levels = feature_info(get_model_config('resnet18'))
  assert [(f.module, f.num_chs, f.reduction) for f in levels] == [
      ('stem', 64, 2), ('stage1', 64, 4), ('stage2', 128, 8), ('stage3', 256, 16),
      ('stage4', 512, 32)]
  model = create_model('resnet50d', features_only=True, out_indices=(0, 2), width_mult=0.25,
                       depth_mult=0.3)
  images = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)
  assert 'classifier' not in variables['params'] and 'stages_2' not in variables['params']
  maps = jax.eval_shape(model.apply, variables, images)
  assert [m.shape for m in maps] == [(2, 32, 32, 16), (2, 8, 8, 128)]
