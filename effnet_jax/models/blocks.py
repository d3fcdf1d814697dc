"""MBConv, Fused-MBConv and ReXNet's linear bottleneck, each built from a resolved BlockSpec."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.models.arch import BlockSpec
from effnet_jax.models.layers import ConvBN, DropPath, LayerConfig, SqueezeExcite, get_activation


class _Block(nn.Module):
  """Fields and helpers shared by all block types."""
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
    (all of them unless the block widens, which only ReXNet's partial residual does)."""
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


class MBConv(_Block):
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


class FusedMBConv(_Block):
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


class LinearBottleneck(_Block):
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


BLOCKS = {'ir': MBConv, 'fu': FusedMBConv, 'lb': LinearBottleneck}
