"""Every registered model: exact parameter count, MACs, output shape, finite eval outputs (train
mode too for one model of each family)."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effnet_jax.models import create_model, get_model_config, list_models
from effnet_jax.models.published import PUBLISHED
from effnet_jax.models.utils import abstract_variables
from zoo_helpers import zoo_numbers

REQUIRED = (
    [f'efficientnet_b{i}' for i in range(8)] + ['efficientnet_b8', 'efficientnet_l2']
    + [f'efficientnetv2_{v}' for v in ('s', 'm', 'l', 'xl', 'b0', 'b1', 'b2', 'b3')]
    + [f'rexnet_{w}' for w in (100, 130, 150, 200, 300)]
    + [f'efficientnet_lite{i}' for i in range(5)]
    + [f'mobilenetv2_{v}' for v in ('050', '075', '100', '140', '110d', '120d')]
    + [f'resnet{d}' for d in (18, 34, 50, 101, 152)] + ['resnet50d']
    + [f'swin_{v}_patch4_window7_224' for v in ('tiny', 'small', 'base')]
    + ['rexnet_search_fmnist_060', 'rexnet_search_fmnist_100', 'efficientnetv2_nas_fmnist'])


def test_registry_has_every_required_name_and_published_numbers():
  assert sorted(list_models()) == sorted(REQUIRED)
  assert sorted(PUBLISHED) == sorted(REQUIRED)


# zoo_numbers: summary.model_numbers (one abstract trace of the model at its eval size), computed
# once per session for these tests and docs/models.md's (tests/tools/test_summary.py)
@pytest.mark.parametrize('name', list_models())
def test_trainable_params_equal_reference(name):
  assert zoo_numbers(name)[0] == PUBLISHED[name].params


@pytest.mark.parametrize('name', [n for n in list_models() if PUBLISHED[n].gmacs])
def test_macs_match_reference(name):
  macs = zoo_numbers(name)[1] / 1e9
  reference = PUBLISHED[name].gmacs
  assert abs(macs - reference) <= 0.02 * reference  # the bound
  assert round(macs, 3) == pytest.approx(reference, abs=1e-3)  # in fact exact to printed digits


def fill_like(abstract, seed=0):
  """Random variables with the model's shapes: He-normal kernels, unit BN scale/variance.

  Host-side numpy is much faster than jitting ``model.init`` for the 100-500M-parameter variants;
  ``model.init`` itself is covered in test_network.py. Every leaf is one block of normal draws,
  read from a random offset on (wrapping round), scaled and tiled (drawing 480M fresh normals for
  efficientnet_l2 alone takes ~15 s; tiling the scaled block into the leaf, 2 s); a leaf smaller
  than the block scales only the part it takes.
  """
  rng = np.random.default_rng(seed)
  block = rng.standard_normal(1 << 20, np.float32)
  doubled = np.concatenate([block, block])

  def make(path, leaf):
    name = path[-1].key
    if name in ('scale', 'var'):
      return np.ones(leaf.shape, leaf.dtype)
    scale = np.sqrt(1.0 / math.prod(leaf.shape[:-1])) if name == 'kernel' else 0.01
    offset = int(rng.integers(len(block)))
    size = math.prod(leaf.shape)
    rolled = doubled[offset:offset + min(size, len(block))] * np.float32(scale)
    return np.resize(rolled, leaf.shape)  # repeats the block cyclically

  # numpy leaves, put on the device in one call: jnp.ones and jnp.asarray per leaf each dispatch
  # a small program of their own (about 5 ms apiece, 1-2 s per model)
  return jax.device_put(jax.tree_util.tree_map_with_path(make, abstract))


# Train mode (batch statistics, dropout, stochastic depth) is the same code in every variant of a
# family, and compiling it for the 100-500M-parameter variants costs minutes of a CI machine:
# every variant runs in eval mode, one of each family also in train mode.
TRAIN_MODE = ('efficientnet_b0', 'efficientnet_lite0', 'efficientnetv2_s', 'efficientnetv2_b0',
              'rexnet_100', 'mobilenetv2_100', 'resnet18', 'swin_tiny_patch4_window7_224')
# Overrides that make a family's models run at 32 px: Swin's windows must tile the token grid
# (8x8 at 32 px, patch 4), so windows of 2 (the parameter shapes change only in the bias tables).
SMALL = {'swin': dict(window_size=2, image_size=32, eval_image_size=32)}


@pytest.mark.parametrize('name', list_models())
def test_forward_finite(name):
  model = create_model(name, num_classes=7, **SMALL.get(get_model_config(name).family, {}))
  variables = fill_like(abstract_variables(model, 32, batch_size=2))
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  eval_logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
  chex.assert_shape(eval_logits, (2, 7))
  chex.assert_type(eval_logits, jnp.float32)
  chex.assert_tree_all_finite(eval_logits)
  if name not in TRAIN_MODE:
    return
  train_logits, updates = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=['batch_stats'], rngs={'dropout': jax.random.key(1)}))(
          variables, images)
  chex.assert_shape(train_logits, (2, 7))
  chex.assert_tree_all_finite(train_logits)
  if 'batch_stats' not in variables:  # a family without BatchNorm (Swin: LayerNorm)
    assert not updates
    return
  assert jax.tree_util.tree_leaves(updates['batch_stats'])
  chex.assert_tree_all_finite(updates['batch_stats'])
  chex.assert_trees_all_equal_shapes_and_dtypes(updates['batch_stats'], variables['batch_stats'])


def test_train_mode_covers_every_family():
  def families(names):
    return {get_model_config(n).family for n in names}
  assert families(list_models()) == families(TRAIN_MODE)
