"""Building blocks shared by every family: conv with selectable padding, BN, SE, drop-path."""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

PADDINGS = ('same', 'symmetric')

# TF's conv initializer: normal(0, sqrt(2 / fan_out)), fan_out = kh * kw * out_channels.
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# Depthwise kernels are [kh, kw, 1, C] in Flax; TF counts fan_out over its [kh, kw, C, 1]
# layout, i.e. kh * kw. Treating axis -2 (size 1) as the output axis gives the same.
depthwise_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal', in_axis=-1,
                                                  out_axis=-2)
# TF's dense initializer: uniform(-1/sqrt(out), 1/sqrt(out)).
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_out', 'uniform')

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'silu': nn.silu,
    'swish': nn.silu,
    'relu': nn.relu,
    'relu6': nn.relu6,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f'unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}') from None


def conv_padding(padding: str, kernel_size: int, stride: int):
  """Flax padding argument for a square conv.

  ``same``: TF SAME (for even inputs and stride 2 the extra pixel goes bottom/right; Flax's
  'SAME' splits identically). ``symmetric``: PyTorch-style static ``((s-1) + (k-1)) // 2`` on
  both sides.
  """
  if padding == 'same':
    return 'SAME'
  if padding == 'symmetric':
    p = ((stride - 1) + (kernel_size - 1)) // 2
    return ((p, p), (p, p))
  raise ValueError(f'unknown padding {padding!r}; expected one of {PADDINGS}')


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm -> optional activation, the unit every block is made of."""
  features: int
  kernel_size: int = 1
  stride: int = 1
  groups: int = 1
  activation: str | None = None
  padding: str = 'same'
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    k = self.kernel_size
    x = nn.Conv(self.features, (k, k), strides=(self.stride, self.stride),
                padding=conv_padding(self.padding, k, self.stride),
                feature_group_count=self.groups, use_bias=False,
                kernel_init=depthwise_init if self.groups > 1 else conv_init,
                dtype=self.dtype, param_dtype=self.param_dtype, name='conv')(x)
    x = batch_norm(self, train, name='bn')(x)
    if self.activation:
      x = get_activation(self.activation)(x)
    return x


def batch_norm(module: nn.Module, train: bool, name: str) -> nn.BatchNorm:
  """A BatchNorm configured from a module's ``bn_*``/dtype fields (Flax/TF momentum)."""
  return nn.BatchNorm(use_running_average=not train, momentum=module.bn_momentum,
                      epsilon=module.bn_eps, axis_name=module.bn_axis_name,
                      dtype=module.dtype, param_dtype=module.param_dtype, name=name)


class SqueezeExcite(nn.Module):
  """Squeeze-and-excitation gate on a [B, H, W, C] tensor.

  EfficientNet: mean -> 1x1 (bias) -> SiLU -> 1x1 (bias) -> sigmoid -> scale.
  ReXNet (``use_bn``): mean -> 1x1 (bias) -> BN -> ReLU -> 1x1 (bias) -> sigmoid -> scale.
  """
  reduced: int
  activation: str = 'silu'
  use_bn: bool = False
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    channels = x.shape[-1]
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.Dense(self.reduced, kernel_init=conv_init, dtype=self.dtype,
                 param_dtype=self.param_dtype, name='reduce')(s)
    if self.use_bn:
      s = batch_norm(self, train, name='bn')(s)
    s = get_activation(self.activation)(s)
    s = nn.Dense(channels, kernel_init=conv_init, dtype=self.dtype,
                 param_dtype=self.param_dtype, name='expand')(s)
    return x * nn.sigmoid(s)


def drop_path(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
  """Stochastic depth: zero whole samples with probability ``rate``, scale the rest by 1/keep."""
  keep = 1.0 - rate
  mask = jax.random.bernoulli(rng, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))


class DropPath(nn.Module):
  """Per-sample stochastic depth on a residual branch; identity at eval or rate 0."""
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if not train or self.rate == 0.0:
      return x
    return drop_path(x, self.rate, self.make_rng('dropout'))
