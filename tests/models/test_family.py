"""Model families: a family defined outside the package plugs in through registry.Family alone."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from effnet_jax.models import arch, blocks, network, registry
from effnet_jax.models.registry import (Family, ModelConfig, create_model, get_family,
                                        get_model_config, list_families, list_models, register,
                                        register_family)
from effnet_jax.tools import convert
from effnet_jax.tools.weight_files import SOURCES
from effnet_jax.train import finetune
from effnet_jax.train.step import resolve_bn_group_size


@pytest.fixture(autouse=True)
def isolated_registries():
  """Whatever a test registers is gone afterwards (the zoo tests list every model)."""
  tables = [registry._REGISTRY, registry._FAMILIES, blocks.BLOCKS, arch.BLOCK_TYPES]
  saved = [dict(t) for t in tables]
  yield
  for table, before in zip(tables, saved):
    table.clear()
    table.update(before)


class toy_mixer:  # noqa: N801  (stands for a module file, e.g. effnet_jax/models/toy_mixer.py)
  """A family that is no stem/stages/head CNN (like a transformer): patches -> MLP -> logits."""

  class PatchMLP(nn.Module):
    patch: int
    width: int
    num_classes: int

    @nn.compact
    def __call__(self, images, train: bool = False):
      x = nn.Conv(self.width, (self.patch, self.patch), strides=self.patch, name='embed')(images)
      x = nn.Dense(self.width, name='mlp')(nn.gelu(x))
      x = nn.Dropout(0.1)(x.mean(axis=(1, 2)), deterministic=not train)
      return nn.Dense(self.num_classes, name='classifier')(x)

  @staticmethod
  def build(config: ModelConfig) -> nn.Module:
    return toy_mixer.PatchMLP(patch=4, width=round(16 * config.width_mult),
                              num_classes=config.num_classes)

  @staticmethod
  def architecture(config: ModelConfig) -> dict:
    return {'width': round(16 * config.width_mult)}

  @staticmethod
  def register_all():
    register_family(Family(name='toy_mixer', build=toy_mixer.build,
                           bn_group_size=lambda n: max(1, n // 2),
                           architecture=toy_mixer.architecture))
    for width in (1.0, 2.0):
      register(ModelConfig(name=f'toy_mixer_{round(width * 100)}', family='toy_mixer',
                           width_mult=width, image_size=32, eval_image_size=32))


def test_a_new_family_needs_no_shared_code():
  toy_mixer.register_all()
  assert list_families()[-1] == 'toy_mixer'
  assert list_models('toy_mixer') == ['toy_mixer_100', 'toy_mixer_200']
  model = create_model('toy_mixer_200', num_classes=5)
  images = jnp.ones((2, 32, 32, 3))
  variables = model.init(jax.random.key(0), images)
  assert variables['params']['embed']['kernel'].shape == (4, 4, 3, 32)
  logits = model.apply(variables, images, train=True, rngs={'dropout': jax.random.key(1)})
  assert logits.shape == (2, 5)
  # overrides and compound scaling are the registry's, whatever the family
  assert get_model_config('toy_mixer_100', phi=1.0).width_mult == pytest.approx(1.1)
  assert finetune.architecture(get_model_config('toy_mixer_100'))['width'] == 16
  with pytest.raises(ValueError, match='not a stem/stages/head network'):
    get_model_config('toy_mixer_100').resolved_arch()
  with pytest.raises(convert.ConversionError, match='no timm weight layout for the toy_mixer'):
    convert._naming('timm', get_model_config('toy_mixer_100'), {})


class ToyBasicBlock(blocks.Block):
  """A ResNet-style block: 3x3 conv -> BN -> act -> 3x3 conv -> BN -> [residual]."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    shortcut = x
    x = self.conv_bn(self.spec.out_channels, 'conv1', 3, self.spec.stride,
                     activation=self.activation)(x, train)
    x = self.conv_bn(self.spec.out_channels, 'conv2', 3)(x, train)
    return self.residual(x, shortcut, train)


def test_a_new_block_type_through_the_shared_skeleton():
  blocks.register_block('bb', ToyBasicBlock)
  hooks = dict(stem_channels=lambda c: c.stem_channels, head_channels=lambda c: c.head_channels,
               block_strings=lambda c: c.stages,
               arch=lambda c: arch.decode_arch(c.stages, c.stem_channels, round_channels=False))
  register_family(Family(name='toy_resnet', build=network.build, **hooks))
  register(ModelConfig(name='toy_resnet_a', family='toy_resnet', activation='relu',
                       stages=(('bb_r2_k3_s1_e1_c16',), ('bb_r1_k3_s2_e1_c24',)),
                       stem_channels=16, head_channels=32))
  model = create_model('toy_resnet_a', num_classes=3)
  variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
  block = variables['params']['stages_0']['blocks_1']
  assert sorted(block) == ['conv1', 'conv2']
  assert block['conv2']['conv']['kernel'].shape == (3, 3, 16, 16)
  assert [s.skip for stage in get_model_config('toy_resnet_a').resolved_arch()
          for s in stage] == [True, True, False]
  assert model.apply(variables, jnp.ones((1, 32, 32, 3))).shape == (1, 3)


def test_resolve_bn_group_size_uses_the_family_default():
  toy_mixer.register_all()
  assert resolve_bn_group_size(None, 8, 'toy_mixer') == 4  # the family's max(1, n // 2)
  assert resolve_bn_group_size(2, 8, 'toy_mixer') == 2  # an explicit size wins
  assert resolve_bn_group_size(0, 8, 'toy_mixer') == 8
  for family in list_families():
    for n in (1, 8, 64, 1024):
      assert resolve_bn_group_size(None, n, family) == get_family(family).bn_group_size(n)
  register_family(Family(name='toy_default', build=toy_mixer.build))
  assert resolve_bn_group_size(None, 16, 'toy_default') == 1  # per device unless a family says


def test_family_registration_errors():
  with pytest.raises(ValueError, match="unknown model family 'efficientnet_v9'.*did you mean"):
    register(ModelConfig(name='x', family='efficientnet_v9'))
  with pytest.raises(ValueError, match="family 'rexnet' registered twice"):
    register_family(dataclasses.replace(get_family('rexnet')))
  with pytest.raises(ValueError, match="block type 'lb' registered twice"):
    blocks.register_block('lb', ToyBasicBlock)


def test_every_family_names_existing_weight_layouts():
  for family in map(get_family, list_families()):
    assert set(family.weight_layouts) <= set(SOURCES)
    assert set(family.weight_layouts.values()) <= set(convert.NAMINGS)


def test_docs_describe_every_family():
  from effnet_jax.tools import summary  # docs/models.md's text
  for family in list_families():
    assert f'| `{family}` | `{family}.py` |' in summary.DOC_HEADER
