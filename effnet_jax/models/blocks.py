"""The block modules of block strings: MBConv and Fused-MBConv (shared by the EfficientNet
families) and the registry through which a family module adds its own (:func:`register_block`)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.models import arch as arch_lib
from effnet_jax.models.arch import BlockSpec
from effnet_jax.models.layers import ConvBN, DropPath, LayerConfig, SqueezeExcite


class Block(nn.Module):
  """Fields and helpers shared by all block types (a family's own blocks subclass it)."""
  spec: BlockSpec
  activation: str = 'silu'
  layers: LayerConfig = LayerConfig()

  def conv_bn(self, features: int, name: str, kernel_size: int = 1, stride: int = 1,
              depthwise: bool = False, activation: str | None = None) -> ConvBN:
    return ConvBN(features, kernel_size, stride, depthwise, activation, self.layers, name=name)

  def squeeze_excite(self, activation: str, use_bn: bool = False) -> SqueezeExcite:
    return SqueezeExcite(self.spec.se_channels, activation, use_bn, self.layers, name='se')

  def residual(self, x: jax.Array, shortcut: jax.Array, train: bool) -> jax.Array:
    """Drop-path on the branch, then the shortcut added to the first input-width channels
    (all of them unless the block widens: a partial residual)."""
    if not self.spec.skip:
      return x
    x = DropPath(self.spec.drop_path_rate, name='drop_path')(x, train)
    cin = shortcut.shape[-1]
    if x.shape[-1] == cin:
      return x + shortcut
    # lax slices, not x[..., :cin]: under a symbolic batch size (export) indexing becomes a
    # dynamic gather, which TFLite cannot convert
    return jnp.concatenate([jax.lax.slice_in_dim(x, 0, cin, axis=-1) + shortcut,
                            jax.lax.slice_in_dim(x, cin, None, axis=-1)], axis=-1)


class MBConv(Block):
  """Inverted residual: [1x1 expand -> BN -> act] -> kxk depthwise -> BN -> act -> [SE] ->
  1x1 project -> BN -> [drop-path + residual]. Expand ratio 1 has no expansion conv."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    s = self.spec
    shortcut = x
    if s.expand_ratio != 1:
      x = self.conv_bn(s.mid_channels, 'expand', activation=self.activation)(x, train)
    x = self.conv_bn(s.mid_channels, 'dw', s.kernel_size, s.stride, depthwise=True,
                     activation=self.activation)(x, train)
    if s.se_channels:
      x = self.squeeze_excite(self.activation)(x, train)
    x = self.conv_bn(s.out_channels, 'project')(x, train)
    return self.residual(x, shortcut, train)


class FusedMBConv(Block):
  """Fused-MBConv (EfficientNetV2): kxk conv (stride) -> BN -> act -> [SE] -> 1x1 project ->
  BN -> [residual]. With expand ratio 1 a single kxk conv -> BN -> act."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    s = self.spec
    shortcut = x
    if s.expand_ratio == 1:
      x = self.conv_bn(s.out_channels, 'fused', s.kernel_size, s.stride,
                       activation=self.activation)(x, train)
    else:
      x = self.conv_bn(s.mid_channels, 'fused', s.kernel_size, s.stride,
                       activation=self.activation)(x, train)
      if s.se_channels:
        x = self.squeeze_excite(self.activation)(x, train)
      x = self.conv_bn(s.out_channels, 'project')(x, train)
    return self.residual(x, shortcut, train)


# token -> Flax module; effnet_jax.models.network.Stage builds every block through it
BLOCKS: dict[str, type[Block]] = {}


def register_block(token: str, module: type[Block],
                   rules: arch_lib.BlockType = arch_lib.BlockType()) -> type[Block]:
  """Makes ``token`` a block type of block strings (``{token}_r1_k3_...``) built as ``module``;
  ``rules`` say how :func:`arch.decode_arch` resolves its SE width and residual."""
  if BLOCKS.get(token, module) is not module:
    raise ValueError(f'block type {token!r} registered twice')
  arch_lib.register_block_type(token, rules)
  BLOCKS[token] = module
  return module


register_block('ir', MBConv)
register_block('fu', FusedMBConv)
