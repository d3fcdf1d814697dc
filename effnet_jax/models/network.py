"""The stem -> stages of blocks -> head -> classifier skeleton of the convolutional families.

EfficientNet V1/V2/Lite and ReXNet differ only in their resolved block specs and a few
settings (activation, padding, BN constants), so one pure-functional module serves all: their
``Family.build`` is :func:`build`, which reads the family's resolve hooks through the config.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.models.arch import BlockSpec
from effnet_jax.models.blocks import BLOCKS
from effnet_jax.models.layers import ConvBN, LayerConfig, dense_init
from effnet_jax.models.registry import ModelConfig, feature_info, get_dtype


class Stage(nn.Module):
  """A sequence of blocks; its output is one entry of ``forward_features``."""
  blocks: tuple[BlockSpec, ...]
  activation: str = 'silu'
  layers: LayerConfig = LayerConfig()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for j, spec in enumerate(self.blocks):
      x = BLOCKS[spec.block_type](spec, self.activation, self.layers, name=f'blocks_{j}')(x, train)
    return x


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
  """One feature level of a backbone (timm's ``feature_info`` entry): the map ``module`` of
  ``forward_features`` (``stem``, ``stage1``, ...), its channels and its reduction (input side /
  map side)."""
  module: str
  num_chs: int
  reduction: int


def feature_levels(config: ModelConfig) -> tuple[FeatureInfo, ...]:
  """One level per reduction (2, 4, 8, 16, 32): the last map at that reduction, as timm's
  ``features_only`` models pick them (``Family.feature_info`` of the stem/stages/head
  families)."""
  levels = {2: FeatureInfo('stem', config.resolved_stem_channels(), 2)}  # the stride-2 stem
  reduction = 2
  for index, stage in enumerate(config.resolved_arch()):
    for spec in stage:
      reduction *= spec.stride
    levels[reduction] = FeatureInfo(f'stage{index + 1}', stage[-1].out_channels, reduction)
  return tuple(levels[r] for r in sorted(levels))


def classify(feature_map: jax.Array, dropout: nn.Dropout, classifier: nn.Module | None,
             train: bool) -> jax.Array:
  """Global average pool -> dropout -> ``classifier``: float32 logits, float64 in a float64
  model (the pooled features where ``classifier`` is None). The head of every CNN family."""
  x = jnp.mean(feature_map, axis=(1, 2))
  x = dropout(x, deterministic=not train)
  if classifier is not None:
    x = classifier(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


class EfficientNet(nn.Module):
  """Image classifier on NHWC float images.

  Usage::

    variables = model.init(rng, images, train=False)
    logits = model.apply(variables, images, train=False)
    logits, updates = model.apply(variables, images, train=True, mutable=['batch_stats'],
                                  rngs={'dropout': key})
    feats = model.apply(variables, images, method='forward_features')  # per-stage maps

  Attributes:
    arch: resolved blocks, one tuple per stage (see ``arch.decode_arch``).
    stem_channels, head_channels: widths of the stem conv and the 1x1 head conv.
    num_classes: classifier width; 0 drops the classifier (pooled features out).
    dropout_rate: dropout before the classifier.
    layers: padding, BN constants and axis, depthwise implementation, dtypes.
    feature_info: empty for a classifier; else a backbone whose ``__call__`` returns the maps of
      these levels, in order (no head conv, no classifier: their weights are not created).
  """
  arch: tuple[tuple[BlockSpec, ...], ...]
  stem_channels: int
  head_channels: int
  num_classes: int = 1000
  activation: str = 'silu'
  dropout_rate: float = 0.2
  layers: LayerConfig = LayerConfig()
  feature_info: tuple[FeatureInfo, ...] = ()

  def setup(self):
    act, cfg = self.activation, self.layers
    self.stem = ConvBN(self.stem_channels, 3, 2, activation=act, layers=cfg)
    self.stages = [Stage(blocks, act, cfg) for blocks in self.arch]
    self.head_conv = ConvBN(self.head_channels, 1, activation=act, layers=cfg)
    self.head_dropout = nn.Dropout(self.dropout_rate)
    if self.num_classes:
      self.classifier = nn.Dense(self.num_classes, kernel_init=dense_init, dtype=cfg.dtype,
                                 param_dtype=cfg.param_dtype)

  def forward_features(self, images: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """Feature maps in order: ``stem``, ``stage1`` … ``stageN``, ``head`` (the 1x1 head conv,
    the map GradCAM and backbones use)."""
    x = self.stem(jnp.asarray(images, self.layers.dtype), train)
    features = {'stem': x}
    for i, stage in enumerate(self.stages):
      x = stage(x, train)
      features[f'stage{i + 1}'] = x
    features['head'] = self.head_conv(x, train)
    return features

  def forward_head(self, feature_map: jax.Array, train: bool = False) -> jax.Array:
    """Global average pool -> dropout -> classifier (:func:`classify`)."""
    return classify(feature_map, self.head_dropout,
                    self.classifier if self.num_classes else None, train)

  def forward_backbone(self, images: jax.Array, train: bool = False) -> list[jax.Array]:
    """The maps of ``feature_info``'s levels, computed only as deep as the deepest one."""
    wanted = {f.module for f in self.feature_info}
    x = self.stem(jnp.asarray(images, self.layers.dtype), train)
    maps = {'stem': x}
    for i, stage in enumerate(self.stages):
      if wanted <= set(maps):
        break
      x = stage(x, train)
      maps[f'stage{i + 1}'] = x
    return [maps[f.module] for f in self.feature_info]

  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array | list[jax.Array]:
    if self.feature_info:
      return self.forward_backbone(images, train)
    return self.forward_head(self.forward_features(images, train)['head'], train)


def layer_config(config: ModelConfig) -> LayerConfig:
  """The padding, BN, depthwise and dtype settings of ``config`` for the shared layers."""
  return LayerConfig(
      padding=config.padding, bn_momentum=config.bn_momentum, bn_eps=config.bn_eps,
      bn_axis_name=config.bn_axis_name, depthwise_impl=config.depthwise_impl,
      conv_impl=config.conv_impl,
      dtype=get_dtype(config.dtype), param_dtype=get_dtype(config.param_dtype))


def build(config: ModelConfig) -> EfficientNet:
  """The skeleton with the blocks and widths the config's family resolves (``Family.build``
  of every stem/stages/head family)."""
  return EfficientNet(
      arch=config.resolved_arch(), stem_channels=config.resolved_stem_channels(),
      head_channels=config.resolved_head_channels(), num_classes=config.num_classes,
      activation=config.activation, dropout_rate=config.dropout_rate,
      layers=layer_config(config), feature_info=selected_levels(config))


def selected_levels(config: ModelConfig) -> tuple[FeatureInfo, ...]:
  """The levels ``config.out_indices`` picks (empty for a classifier)."""
  if config.out_indices is None:
    return ()
  levels = feature_info(config)  # the family's levels
  bad = [i for i in config.out_indices if not -len(levels) <= i < len(levels)]
  if bad or not config.out_indices:
    raise ValueError(f'out_indices={tuple(config.out_indices)}: {config.name} has '
                     f'{len(levels)} feature levels (indices 0-{len(levels) - 1}, reductions '
                     f'{", ".join(str(f.reduction) for f in levels)})')
  return tuple(levels[i] for i in config.out_indices)
