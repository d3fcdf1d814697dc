"""The ResNet family (He et al. 2016) in timm's ``resnet*`` layout: ResNet-18/34/50/101/152 and
ResNet-50-D.

Everything ResNet-specific lives here: its two blocks (``basic``, ``bottleneck``), its network
(a 7x7 stem conv with a 3x3 max pool, four stages, global pool and classifier: no head conv),
the D variant (``ModelConfig.resnet_d``) and the variants. Layout as timm / torchvision build it
("v1.5"): the bottleneck's stride sits in its 3x3 conv, not in the first 1x1 conv as in the
paper; where a block changes the width or the resolution the shortcut is a 1x1 conv + BN
(projection), elsewhere the identity; the residual sum is followed by the activation.

Block strings (``arch``) carry the stages, so width and depth scaling are ``decode_arch``'s:

* ``c``: the block's *output* width, rounded by ``round_filters`` (multiples of 8, the 10 % rule);
* ``e``: output width / inner width: 1 for ``basic``, 4 for ``bottleneck``, whose inner width is
  the rounded output width // 4 (the output is rounded, the inner width follows; width 1.0 is
  exactly the published ResNets);
* ``k3``: the 3x3 conv; ``s``: the stride of the stage's first block;
* a block without an identity shortcut (stride or width change, or ``noskip``) gets the
  projection shortcut instead.

The stem width (64) scales like a block width; the deep stem of ResNet-D is three 3x3 convs of
widths stem/2, stem/2, stem (32, 32, 64 at width 1.0). PyTorch constants: symmetric padding, BN
epsilon 1e-5, momentum 0.9 (Flax convention), ReLU, no dropout, stochastic depth (off by default)
with timm's rule: block i of N drops with ``drop_path_rate * i / (N - 1)``.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.models import arch as arch_lib
from effnet_jax.models import network
from effnet_jax.models.blocks import BLOCKS, Block, register_block
from effnet_jax.models.layers import (ConvBN, DropPath, LayerConfig, dense_init, get_activation,
                                      pad_amounts)
from effnet_jax.models.network import FeatureInfo, layer_config, selected_levels
from effnet_jax.models.registry import Family, ModelConfig, register, register_family


class ResidualBlock(Block):
  """The shortcut and the residual sum shared by both ResNet blocks.

  ``avg_down`` (ResNet-D): the projection shortcut averages 2x2 windows (stride 2; ceil mode, a
  partial window averages what it covers) before a stride-1 1x1 conv, instead of a strided 1x1
  conv that skips three of four positions."""
  avg_down: bool = False

  def shortcut(self, x: jax.Array, train: bool) -> jax.Array:
    s = self.spec
    if s.skip:
      return x
    stride = s.stride
    if self.avg_down and stride != 1:
      pads = tuple((0, n % stride) for n in x.shape[1:3])
      x = nn.avg_pool(x, (stride, stride), (stride, stride), padding=pads,
                      count_include_pad=False)
      stride = 1
    return self.conv_bn(s.out_channels, 'downsample', 1, stride)(x, train)

  def add(self, x: jax.Array, shortcut: jax.Array, train: bool) -> jax.Array:
    x = DropPath(self.spec.drop_path_rate, name='drop_path')(x, train)
    return get_activation(self.activation)(x + shortcut)


class BasicBlock(ResidualBlock):
  """3x3 conv (stride) -> BN -> act -> 3x3 conv -> BN -> + shortcut -> act."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    s = self.spec
    shortcut = self.shortcut(x, train)
    x = self.conv_bn(s.out_channels, 'conv1', s.kernel_size, s.stride,
                     activation=self.activation)(x, train)
    x = self.conv_bn(s.out_channels, 'conv2', s.kernel_size)(x, train)
    return self.add(x, shortcut, train)


class Bottleneck(ResidualBlock):
  """1x1 conv -> BN -> act -> 3x3 conv (stride) -> BN -> act -> 1x1 conv (x ``e`` wider) -> BN ->
  + shortcut -> act; the inner width is ``out_channels // expand_ratio``."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    s = self.spec
    inner = s.out_channels // s.expand_ratio
    shortcut = self.shortcut(x, train)
    x = self.conv_bn(inner, 'conv1', activation=self.activation)(x, train)
    x = self.conv_bn(inner, 'conv2', s.kernel_size, s.stride, activation=self.activation)(x, train)
    x = self.conv_bn(s.out_channels, 'conv3')(x, train)
    return self.add(x, shortcut, train)


register_block('basic', BasicBlock)
register_block('bottleneck', Bottleneck)


class ResNetStem(nn.Module):
  """7x7/2 conv -> BN -> act (``deep``: 3x3/2, 3x3, 3x3 convs of widths channels/2, channels/2,
  channels, each with BN and act); the max pool after it is the network's."""
  channels: int
  deep: bool = False
  activation: str = 'relu'
  layers: LayerConfig = LayerConfig()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = lambda n, k, s, name: ConvBN(n, k, s, activation=self.activation, layers=self.layers,
                                        name=name)
    if not self.deep:
      return conv(self.channels, 7, 2, 'conv1')(x, train)
    x = conv(self.channels // 2, 3, 2, 'conv1')(x, train)
    x = conv(self.channels // 2, 3, 1, 'conv2')(x, train)
    return conv(self.channels, 3, 1, 'conv3')(x, train)


class ResNetStage(nn.Module):
  """A sequence of ResNet blocks; its output is one entry of ``forward_features``."""
  blocks: tuple[arch_lib.BlockSpec, ...]
  activation: str = 'relu'
  layers: LayerConfig = LayerConfig()
  avg_down: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for j, spec in enumerate(self.blocks):
      x = BLOCKS[spec.block_type](spec, self.activation, self.layers, avg_down=self.avg_down,
                                  name=f'blocks_{j}')(x, train)
    return x


def max_pool(x: jax.Array, padding: str) -> jax.Array:
  """3x3 stride-2 max pool (padding as the convs': ``symmetric`` is PyTorch's padding=1)."""
  pads = tuple(pad_amounts(padding, n, 3, 2) for n in x.shape[1:3])
  return nn.max_pool(x, (3, 3), (2, 2), padding=pads)


class ResNet(nn.Module):
  """Image classifier on NHWC float images, with the interface of ``network.EfficientNet``
  (``forward_features``, ``forward_head``, backbone levels); see that class for usage.

  Attributes:
    arch: resolved blocks, one tuple per stage (``basic`` / ``bottleneck`` block specs).
    stem_channels: width of the stem's output.
    resnet_d: ResNet-D: deep stem and average-pool projection shortcuts.
    num_classes: classifier width; 0 drops the classifier (pooled features out).
    dropout_rate: dropout before the classifier.
    layers: padding, BN constants and axis, dtypes.
    feature_info: empty for a classifier; else a backbone returning the maps of these levels.
  """
  arch: tuple[tuple[arch_lib.BlockSpec, ...], ...]
  stem_channels: int
  resnet_d: bool = False
  num_classes: int = 1000
  activation: str = 'relu'
  dropout_rate: float = 0.0
  layers: LayerConfig = LayerConfig()
  feature_info: tuple[FeatureInfo, ...] = ()

  def setup(self):
    act, cfg = self.activation, self.layers
    self.stem = ResNetStem(self.stem_channels, self.resnet_d, act, cfg)
    self.stages = [ResNetStage(blocks, act, cfg, self.resnet_d) for blocks in self.arch]
    self.head_dropout = nn.Dropout(self.dropout_rate)
    if self.num_classes:
      self.classifier = nn.Dense(self.num_classes, kernel_init=dense_init, dtype=cfg.dtype,
                                 param_dtype=cfg.param_dtype)

  def _maps(self, images: jax.Array, train: bool, wanted=None) -> dict[str, jax.Array]:
    x = self.stem(jnp.asarray(images, self.layers.dtype), train)
    maps = {'stem': x}
    x = max_pool(x, self.layers.padding)
    for i, stage in enumerate(self.stages):
      if wanted is not None and wanted <= set(maps):
        break
      x = stage(x, train)
      maps[f'stage{i + 1}'] = x
    return maps

  def forward_features(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """Feature maps in order: ``stem`` (before the max pool, reduction 2), ``stage1`` …
    ``stage4`` and ``head``, the last stage's map again (no head conv: the map pooled for the
    classifier)."""
    maps = self._maps(images, train)
    maps['head'] = maps[f'stage{len(self.stages)}']
    return maps

  def forward_head(self, feature_map: jax.Array, train: bool = False) -> jax.Array:
    """Global average pool -> dropout -> classifier (``network.classify``)."""
    return network.classify(feature_map, self.head_dropout,
                            self.classifier if self.num_classes else None, train)

  def forward_backbone(self, images: jax.Array, train: bool = False) -> list[jax.Array]:
    """The maps of ``feature_info``'s levels, computed only as deep as the deepest one."""
    maps = self._maps(images, train, {f.module for f in self.feature_info})
    return [maps[f.module] for f in self.feature_info]

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array | list[jax.Array]:
    if self.feature_info:
      return self.forward_backbone(images, train)
    return self.forward_head(self._maps(images, train)[f'stage{len(self.stages)}'], train)


# The resolve hooks.

def stem_channels(config: ModelConfig) -> int:
  """The stem width scaled and rounded like a block width (64 at width 1.0)."""
  return arch_lib.round_filters(config.stem_channels, config.width_mult,
                                round_limit=config.round_limit)


def head_channels(config: ModelConfig) -> int:
  """0: a ResNet has no head conv (the last stage's map is pooled)."""
  return 0


def block_strings(config: ModelConfig) -> tuple[tuple[str, ...], ...]:
  return config.stages


def resolved_arch(config: ModelConfig) -> tuple[tuple[arch_lib.BlockSpec, ...], ...]:
  """``decode_arch``'s widths and repeats; drop-path rates by timm's rule, rate * i / (N - 1)."""
  stages = arch_lib.decode_arch(
      config.block_strings(), config.resolved_stem_channels(), width_mult=config.width_mult,
      depth_mult=config.depth_mult, round_limit=config.round_limit)
  last = max(sum(len(s) for s in stages) - 1, 1)
  out, index = [], 0
  for stage in stages:
    specs = []
    for spec in stage:
      specs.append(dataclasses.replace(spec, drop_path_rate=config.drop_path_rate * index / last))
      index += 1
    out.append(tuple(specs))
  return tuple(out)


def feature_levels(config: ModelConfig) -> tuple[FeatureInfo, ...]:
  """timm's ``features_only`` levels: the stem activation (``act1``, reduction 2), then each
  stage (``layer1`` … ``layer4``, reductions 4 … 32; the max pool halves before stage 1)."""
  levels = {2: FeatureInfo('stem', config.resolved_stem_channels(), 2)}
  reduction = 4
  for index, stage in enumerate(config.resolved_arch()):
    for spec in stage:
      reduction *= spec.stride
    levels[reduction] = FeatureInfo(f'stage{index + 1}', stage[-1].out_channels, reduction)
  return tuple(levels[r] for r in sorted(levels))


def architecture(config: ModelConfig) -> dict:
  """What the weights compute with: blocks, stem width and the D variant's layers."""
  return {'blocks': dataclasses.replace(config, drop_path_rate=0.0).resolved_arch(),
          'stem_channels': config.resolved_stem_channels(), 'resnet_d': config.resnet_d}


def build(config: ModelConfig) -> ResNet:
  return ResNet(arch=config.resolved_arch(), stem_channels=config.resolved_stem_channels(),
                resnet_d=config.resnet_d, num_classes=config.num_classes,
                activation=config.activation, dropout_rate=config.dropout_rate,
                layers=layer_config(config), feature_info=selected_levels(config))


FAMILY = register_family(Family(
    name='resnet', build=build, weight_layouts={'timm': 'timm_resnet'},
    stem_channels=stem_channels, head_channels=head_channels, block_strings=block_strings,
    arch=resolved_arch, architecture=architecture, feature_info=feature_levels))


def resnet_stages(block: str, repeats: tuple[int, int, int, int]) -> tuple[tuple[str, ...], ...]:
  """The four stages (widths 64-512 x expansion, stride 2 from stage 2 on) as block strings."""
  e = 4 if block == 'bottleneck' else 1
  return tuple((f'{block}_r{r}_k3_s{1 if i == 0 else 2}_e{e}_c{64 * 2 ** i * e}',)
               for i, r in enumerate(repeats))


# name: (block, repeats per stage, ResNet-D, default weights' preprocessing (timm pretrained_cfg:
# train size, eval size, eval crop, interpolation))
VARIANTS = {
    'resnet18': ('basic', (2, 2, 2, 2), False, (224, 224, 0.875, 'bilinear')),
    'resnet34': ('basic', (3, 4, 6, 3), False, (224, 224, 0.875, 'bilinear')),
    'resnet50': ('bottleneck', (3, 4, 6, 3), False, (224, 224, 0.875, 'bilinear')),
    'resnet101': ('bottleneck', (3, 4, 23, 3), False, (224, 224, 0.875, 'bilinear')),
    'resnet152': ('bottleneck', (3, 8, 36, 3), False, (224, 224, 0.875, 'bilinear')),
    'resnet50d': ('bottleneck', (3, 4, 6, 3), True, (224, 288, 0.95, 'bicubic')),
}

for _name, (_block, _repeats, _d, (_train, _eval, _crop, _interp)) in VARIANTS.items():
  register(ModelConfig(
      name=_name, family='resnet', stages=resnet_stages(_block, _repeats), resnet_d=_d,
      stem_channels=64, head_channels=0, activation='relu', padding='symmetric',
      bn_momentum=0.9, bn_eps=1e-5, dropout_rate=0.0, drop_path_rate=0.0,
      image_size=_train, eval_image_size=_eval, crop_fraction=_crop, interpolation=_interp))
