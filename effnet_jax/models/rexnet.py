"""The ReXNet family (clovaai/rexnet rexnetv1.py): linear channel configuration, widths 1.0x-3.0x.

Everything ReXNet-specific lives here: its block (the linear bottleneck, block type ``lb``), the
generated block strings (one output width per block, growing linearly with depth), the stem and
head width rules, and the variants. The original uses symmetric (PyTorch) padding, PyTorch BN
constants, no stochastic depth and no synchronised BN (statistics per device).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax

from effnet_jax.models import arch as arch_lib
from effnet_jax.models import network
from effnet_jax.models.blocks import Block, register_block
from effnet_jax.models.layers import get_activation
from effnet_jax.models.registry import Family, ModelConfig, register, register_family


class LinearBottleneck(Block):
  """ReXNet block: [1x1 expand -> BN -> act] -> 3x3 depthwise -> BN -> [SE with BN, ReLU] ->
  ReLU6 -> 1x1 project -> BN -> partial residual (the input is added to the first
  ``in_channels`` outputs only)."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    s = self.spec
    shortcut = x
    if s.expand_ratio != 1:
      x = self.conv_bn(s.mid_channels, 'expand', activation=self.activation)(x, train)
    x = self.conv_bn(s.mid_channels, 'dw', s.kernel_size, s.stride, depthwise=True)(x, train)
    if s.se_channels:
      x = self.squeeze_excite('relu', use_bn=True)(x, train)
    x = get_activation('relu6')(x)
    x = self.conv_bn(s.out_channels, 'project')(x, train)
    return self.residual(x, shortcut, train)


# SE width from the expanded channels (floor), residual also into a wider output
register_block('lb', LinearBottleneck,
               arch_lib.BlockType(se_of_expanded=True, partial_residual=True))


REXNET_LAYERS = (1, 2, 2, 3, 3, 5)  # blocks per stage at depth 1.0
REXNET_STRIDES = (1, 2, 2, 2, 1, 2)  # first block of each stage
REXNET_SE = (False, False, True, True, True, True)


def rexnet_layers(depth_mult: float = 1.0) -> list[int]:
  """Blocks per ReXNet stage: ``ceil(n * depth_mult)``."""
  return [math.ceil(n * depth_mult) for n in REXNET_LAYERS]


def linear_bottleneck_stages(channels: Sequence[int], layers: Sequence[int],
                             se_ratio: str = '1/12') -> tuple[tuple[str, ...], ...]:
  """ReXNet's stage layout (strides, SE flags, expansion 1 then 6) as ``lb`` block strings
  with the given per-block output ``channels`` (final widths, one per block)."""
  if len(channels) != sum(layers) or len(layers) != len(REXNET_LAYERS):
    raise ValueError(f'{len(channels)} channels for {len(layers)} stages of {sum(layers)} '
                     f'blocks; expected {len(REXNET_LAYERS)} stages and one width per block')
  stages, block = [], 0
  for stage_idx, n in enumerate(layers):
    stage = []
    for j in range(n):
      stride = REXNET_STRIDES[stage_idx] if j == 0 else 1
      expand = 1 if block == 0 else 6
      s = f'lb_r1_k3_s{stride}_e{expand}_c{channels[block]}'
      if REXNET_SE[stage_idx]:
        s += f'_se{se_ratio}'
      stage.append(s)
      block += 1
    stages.append(tuple(stage))
  return tuple(stages)


def rexnet_stages(width_mult: float, depth_mult: float = 1.0, initial_channels: int = 16,
                  final_channels: int = 180, se_ratio: str = '1/12') -> tuple[tuple[str, ...], ...]:
  """ReXNet's linear channel configuration as block strings with final widths.

  Block ``i`` outputs ``round((16 + i * 180 / D) * w)`` channels (Python's
  round-half-to-even, as the reference code), D = number of blocks.
  """
  layers = rexnet_layers(depth_mult)
  depth = sum(layers)
  base = initial_channels / width_mult if width_mult < 1.0 else initial_channels
  channels = []
  for _ in range(depth):
    channels.append(int(round(base * width_mult)))
    base += final_channels / (depth * 1.0)
  return linear_bottleneck_stages(channels, layers, se_ratio)


# The resolve hooks: the block strings hold final widths, so no width/depth scaling on decode.

def stem_channels(config: ModelConfig) -> int:
  """32 channels, scaled by width_mult from 1.0 up (rexnetv1.py keeps 32 below 1.0)."""
  stem = 32 / config.width_mult if config.width_mult < 1.0 else 32
  return int(round(stem * config.width_mult))


def head_channels(config: ModelConfig) -> int:
  return int(config.head_channels * config.width_mult)


def block_strings(config: ModelConfig) -> tuple[tuple[str, ...], ...]:
  """``config.stages`` if given, else the linear schedule of ``width_mult``/``depth_mult``."""
  return config.stages or rexnet_stages(config.width_mult, config.depth_mult)


def resolved_arch(config: ModelConfig) -> tuple[tuple[arch_lib.BlockSpec, ...], ...]:
  return arch_lib.decode_arch(
      config.block_strings(), config.resolved_stem_channels(), width_mult=1.0, depth_mult=1.0,
      round_limit=config.round_limit, round_channels=False,
      drop_path_rate=config.drop_path_rate)


FAMILY = register_family(Family(
    name='rexnet', build=network.build, weight_layouts={'timm': 'timm_rexnet'},
    stem_channels=stem_channels, head_channels=head_channels, block_strings=block_strings,
    arch=resolved_arch, feature_info=network.feature_levels))

for _width in (1.0, 1.3, 1.5, 2.0, 3.0):
  register(ModelConfig(
      name=f'rexnet_{round(_width * 100)}', family='rexnet', width_mult=_width,
      stem_channels=32, head_channels=1280, activation='silu', padding='symmetric',
      bn_momentum=0.9, bn_eps=1e-5, dropout_rate=0.2, drop_path_rate=0.0,
      image_size=224, eval_image_size=224, crop_fraction=0.875, interpolation='bicubic'))
