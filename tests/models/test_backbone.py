"""Backbones: ``create_model(name, features_only=True, out_indices=...)`` returns the feature maps
per reduction with timm's levels, channels and values, from converted or saved weights."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effnet_jax.models import create_model, feature_info, get_model_config
from effnet_jax.pretrained import load_pretrained, save_pretrained

# timm's features_only levels of the same architectures (feature_info.channels(), .reduction()).
TIMM_LEVELS = {
    'efficientnet_b0': [16, 24, 40, 112, 320],
    'efficientnet_lite0': [16, 24, 40, 112, 320],
    'efficientnetv2_s': [24, 48, 64, 160, 256],
    'efficientnetv2_b0': [16, 32, 48, 112, 192],
    'rexnet_100': [16, 38, 61, 128, 185],
    'resnet50': [64, 256, 512, 1024, 2048],
    'resnet50d': [64, 256, 512, 1024, 2048],
}


@pytest.mark.parametrize('name', sorted(TIMM_LEVELS))
def test_levels_are_timms(name):
  levels = feature_info(get_model_config(name))
  assert [f.num_chs for f in levels] == TIMM_LEVELS[name]
  assert [f.reduction for f in levels] == [2, 4, 8, 16, 32]


def test_maps_of_the_chosen_levels_and_no_head_weights():
  model = create_model('efficientnetv2_b0', features_only=True, out_indices=(1, 3, -1),
                       width_mult=0.5, depth_mult=0.3)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  assert 'head_conv' not in variables['params'] and 'classifier' not in variables['params']
  maps = model.apply(variables, jnp.zeros((2, 64, 64, 3)))
  assert [f.reduction for f in model.feature_info] == [4, 16, 32]
  for feature, info in zip(maps, model.feature_info, strict=True):
    chex.assert_shape(feature, (2, 64 // info.reduction, 64 // info.reduction, info.num_chs))
  # the maps are the classifier's forward_features maps of the same weights
  classifier = create_model('efficientnetv2_b0', width_mult=0.5, depth_mult=0.3)
  full = classifier.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  reference = classifier.apply(full, images, method='forward_features')
  backbone_variables = {c: {k: v for k, v in tree.items() if k in variables[c]}
                        for c, tree in full.items()}
  ours = model.apply(backbone_variables, images)
  chex.assert_trees_all_close(ours, [reference[f.module] for f in model.feature_info])


def test_bad_levels_are_clear_errors():
  with pytest.raises(ValueError, match=r'out_indices=\(5,\): efficientnet_b0 has 5 feature levels '
                                       r'\(indices 0-4, reductions 2, 4, 8, 16, 32\)'):
    create_model('efficientnet_b0', features_only=True, out_indices=(5,))
  with pytest.raises(ValueError, match='give features_only=True too'):
    create_model('efficientnet_b0', out_indices=(1,))


@pytest.mark.parametrize('arch,name', [('tf_efficientnet_b0', 'efficientnet_b0'),
                                       ('rexnet_100', 'rexnet_100'),
                                       ('resnet50d', 'resnet50d')])
def test_converted_weights_give_timms_feature_maps(arch, name, tmp_path):
  """timm weights (random, non-trivial BN statistics and biases) converted and saved; loaded
  as a backbone they give timm's features_only maps."""
  torch = pytest.importorskip('torch')
  timm = pytest.importorskip('timm')
  from effnet_jax.tools import convert
  from timm_helpers import random_timm
  reference_model = random_timm(arch)
  state_dict = reference_model.state_dict()
  features = timm.create_model(arch, pretrained=False, features_only=True).eval()
  # timm's feature wrapper flattens a sequential's names (ReXNet: features.0 -> features_0)
  names = set(features.state_dict())
  renamed = {k if k in names else k.replace('.', '_', 1): v for k, v in state_dict.items()}
  missing, _ = features.load_state_dict(renamed, strict=False)
  assert not missing
  images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
  with torch.no_grad():
    reference = [f.numpy().transpose(0, 2, 3, 1) for f in features(images)]

  model_name, overrides, variables = convert.convert('timm', arch, state_dict)
  save_pretrained(str(tmp_path / 'weights'), model_name, variables, overrides)
  model, loaded = load_pretrained(str(tmp_path / 'weights'), out_indices=(0, 1, 2, 3, 4))
  assert model_name == name and [f.num_chs for f in model.feature_info] == TIMM_LEVELS[name]
  ours = model.apply(loaded, jnp.asarray(images.numpy().transpose(0, 2, 3, 1)))
  for level, (a, b) in enumerate(zip(ours, reference, strict=True)):
    error = float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())
    assert error <= 1e-5, (level, error)
