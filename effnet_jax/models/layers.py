"""Building blocks shared by every family: conv with selectable padding, BN, SE, drop-path."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.impls import resolve_impl

Dtype = Any

PADDINGS = ('same', 'symmetric')
DEPTHWISE_IMPLS = ('xla', 'unrolled', 'auto')
CONV_IMPLS = ('xla', 'dot', 'auto')

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
    'gelu': functools.partial(nn.gelu, approximate=False),  # exact (erf), as torch.nn.GELU
}


@dataclasses.dataclass(frozen=True)
class LayerConfig:
  """Settings every conv/BN layer of a network shares.

  Attributes:
    padding: ``same`` (TF SAME) or ``symmetric`` (PyTorch static padding).
    bn_momentum, bn_eps: BatchNorm constants (Flax/TF momentum convention).
    bn_axis_name: mapped mesh axis (or tuple of axes) over which BN batch statistics are
      averaged in training; None = statistics of the local batch.
    depthwise_impl: ``xla`` (grouped convolution), ``unrolled`` (a sum of k*k shifted
      multiply-adds, the same arithmetic, many times faster under XLA:CPU) or ``auto``
      (``unrolled`` when the default backend is the CPU).
    conv_impl: full (not depthwise) convs: ``xla`` (XLA's convolution), ``dot`` (a stride-1
      1x1 conv as one matrix product over the channels, a conv with at most ``MAX_TAPS``
      taps, k * k * C_in, as broadcast multiply-adds: the same sums, which XLA:CPU runs 1.4x
      and 3x faster than its convolutions) or ``auto`` (``dot`` when the default backend is
      the CPU).
    dtype, param_dtype: compute and parameter dtypes.
  """
  padding: str = 'same'
  bn_momentum: float = 0.99
  bn_eps: float = 1e-3
  bn_axis_name: str | tuple[str, ...] | None = None
  depthwise_impl: str = 'xla'
  conv_impl: str = 'xla'
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f'unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}') from None


def pad_amounts(padding: str, size: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """(before, after) padding of one spatial dimension.

  ``same``: TF SAME — total ``max((ceil(n/s)-1)*s + k - n, 0)``, the extra pixel after (Flax's
  'SAME' splits identically). ``symmetric``: PyTorch-style static ``((s-1) + (k-1)) // 2``.
  """
  if padding == 'same':
    total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2
  if padding == 'symmetric':
    p = ((stride - 1) + (kernel_size - 1)) // 2
    return p, p
  raise ValueError(f'unknown padding {padding!r}; expected one of {PADDINGS}')


def conv_padding(padding: str, kernel_size: int, stride: int):
  """Flax ``padding`` argument of a square conv (see :func:`pad_amounts`)."""
  if padding == 'same':
    return 'SAME'
  return (pad_amounts(padding, 0, kernel_size, stride),) * 2


def live_taps(size: int, kernel_size: int, stride: int, pads: tuple[int, int]) -> list[int]:
  """The taps of one spatial dimension whose strided window reads at least one input pixel (the
  others read only padding: on the 1x1 and 2x2 maps of small images, 24 and 16 of a 5x5
  kernel's 25 taps)."""
  out = (size + sum(pads) - kernel_size) // stride + 1
  return [i for i in range(kernel_size)
          if any(pads[0] <= i + t * stride < pads[0] + size for t in range(out))]


def shifted_windows(x: jax.Array, kh: int, kw: int, stride: int, padding: str):
  """``(i, j, window)`` for each tap of a kh x kw conv that reads any input pixel: the padded
  input's strided slice that tap multiplies, of the output's spatial size. Taps whose window is
  all padding are left out: they add exact zeros (a non-finite kernel value aside)."""
  (h, w) = x.shape[1:3]
  pads = [pad_amounts(padding, n, k, stride) for n, k in ((h, kh), (w, kw))]
  rows, cols = live_taps(h, kh, stride, pads[0]), live_taps(w, kw, stride, pads[1])
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  out_h = (h + sum(pads[0]) - kh) // stride + 1
  out_w = (w + sum(pads[1]) - kw) // stride + 1
  for i in rows:
    for j in cols:
      yield i, j, jax.lax.slice(
          x, (0, i, j, 0),
          (x.shape[0], i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, x.shape[3]),
          (1, stride, stride, 1))


def depthwise_unrolled(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
  """Depthwise conv as k*k shifted, strided slices times per-channel taps.

  Identical arithmetic to a grouped convolution; XLA fuses it into a few elementwise loops,
  which on CPU is an order of magnitude faster than its grouped-convolution kernels
  (forward and backward).
  """
  out = None
  for i, j, window in shifted_windows(x, *kernel.shape[:2], stride, padding):
    term = window * kernel[i, j, 0]
    out = term if out is None else out + term
  return out


def conv_taps(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
  """A full conv with few input channels (a stem) as k*k*C_in shifted, strided slices, each
  one input channel broadcast against its row of the kernel and summed.

  The same sums as the convolution; XLA:CPU fuses them into one elementwise loop, about 3x
  faster there than its convolution kernel on a 3-channel image.
  """
  out = None
  for i, j, window in shifted_windows(x, *kernel.shape[:2], stride, padding):
    for c in range(kernel.shape[2]):
      term = window[..., c:c + 1] * kernel[i, j, c]
      out = term if out is None else out + term
  return out


def cast_with_kernel(module: nn.Module, x: jax.Array, init, shape) -> tuple[jax.Array, jax.Array]:
  """``(x, kernel)`` in the compute dtype: the module's ``kernel`` parameter of ``shape``
  (parameter dtype, ``init``) and its input."""
  cfg = module.layers
  kernel = module.param('kernel', init, shape, cfg.param_dtype)
  return x.astype(cfg.dtype), kernel.astype(cfg.dtype)


class TapsConv(nn.Module):
  """kxk conv, no bias, with ``nn.Conv``'s parameter, computed by :func:`conv_taps`."""
  features: int
  kernel_size: int
  stride: int
  layers: LayerConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    x, kernel = cast_with_kernel(self, x, conv_init, (k, k, x.shape[-1], self.features))
    return conv_taps(x, kernel, self.stride, self.layers.padding)


# A full conv is computed by conv_taps under conv_impl='dot' when it has at most this many taps
# (k * k * C_in): the 3x3 stems on RGB images (27).
MAX_TAPS = 32


def conv_as_dot(cfg: LayerConfig) -> bool:
  return resolve_impl(cfg.conv_impl, 'dot', 'xla', CONV_IMPLS, 'conv_impl') == 'dot'


class DepthwiseConv(nn.Module):
  """Depthwise kxk conv, no bias; kernel ``[k, k, 1, C]`` as ``nn.Conv`` with groups = C."""
  kernel_size: int
  stride: int
  layers: LayerConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, cfg = self.kernel_size, self.layers
    x, kernel = cast_with_kernel(self, x, depthwise_init, (k, k, 1, x.shape[-1]))
    impl = resolve_impl(cfg.depthwise_impl, 'unrolled', 'xla', DEPTHWISE_IMPLS, 'depthwise_impl')
    if impl == 'unrolled':
      return depthwise_unrolled(x, kernel, self.stride, cfg.padding)
    return jax.lax.conv_general_dilated(
        x, kernel, (self.stride, self.stride), conv_padding(cfg.padding, k, self.stride),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=x.shape[-1])


class PointwiseConv(nn.Module):
  """1x1 stride-1 conv, no bias, as one matrix product over the channels; its parameter is
  ``nn.Conv``'s (``kernel [1, 1, C_in, C_out]``, the same initializer), so checkpoints are
  interchangeable with the convolution."""
  features: int
  layers: LayerConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = cast_with_kernel(self, x, conv_init, (1, 1, x.shape[-1], self.features))
    return pointwise(x, kernel[0, 0])


def _channels_dot(x: jax.Array, w: jax.Array) -> jax.Array:
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def _varying_axes(a: jax.Array) -> frozenset:
  """The shard_map mesh axes along which ``a`` varies (empty outside shard_map)."""
  aval = jax.typeof(a)
  vma = getattr(aval, 'vma', None)  # the attribute's name in other JAX releases
  return frozenset(vma if vma is not None else aval.manual_axis_type.varying)


@jax.custom_vjp
def pointwise(x: jax.Array, w: jax.Array) -> jax.Array:
  """``x [..., C_in] @ w [C_in, C_out]``, whose kernel gradient is computed as
  ``(g^T x)^T``: the gradient's rows against the input's, with the small [C_out, C_in] result
  transposed, where JAX's own rule gives ``x^T g``, for which XLA:CPU copied the larger
  gradient into a transposed layout and ran the product outside its fast GEMM library (the B0
  train step at 32 px took 0.91-0.94x the time with this rule). The same sums."""
  return _channels_dot(x, w)


def _pointwise_fwd(x, w):
  return _channels_dot(x, w), (x, w)


def _pointwise_bwd(residuals, g):
  x, w = residuals
  dx = jax.lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())))
  rows = lambda a: a.reshape(-1, a.shape[-1])
  dw = jax.lax.dot_general(rows(g), rows(x), (((0,), (0,)), ((), ()))).T
  # Inside shard_map a replicated kernel's gradient is summed over the mesh axes along which the
  # input varies, as JAX's own rule does (the transpose of the implicit pvary of the kernel).
  summed = tuple(sorted(_varying_axes(dw) - _varying_axes(w)))
  if summed:
    dw = jax.lax.psum(dw, summed)
  return dx, dw


pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)


def batch_norm(cfg: LayerConfig, train: bool, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                      epsilon=cfg.bn_eps, axis_name=cfg.bn_axis_name if train else None,
                      dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name)


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm -> optional activation, the unit every block is made of.

  ``depthwise=True`` makes the conv depthwise (channels in = out).
  """
  features: int
  kernel_size: int = 1
  stride: int = 1
  depthwise: bool = False
  activation: str | None = None
  layers: LayerConfig = LayerConfig()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    k, cfg = self.kernel_size, self.layers
    if self.depthwise:
      x = DepthwiseConv(k, self.stride, cfg, name='conv')(x)
    elif k == 1 and self.stride == 1 and conv_as_dot(cfg):
      x = PointwiseConv(self.features, cfg, name='conv')(x)
    elif k * k * x.shape[-1] <= MAX_TAPS and conv_as_dot(cfg):
      x = TapsConv(self.features, k, self.stride, cfg, name='conv')(x)
    else:
      x = nn.Conv(self.features, (k, k), strides=(self.stride, self.stride),
                  padding=conv_padding(cfg.padding, k, self.stride), use_bias=False,
                  kernel_init=conv_init, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                  name='conv')(x)
    x = batch_norm(cfg, train, name='bn')(x)
    if self.activation:
      x = get_activation(self.activation)(x)
    return x


class SqueezeExcite(nn.Module):
  """Squeeze-and-excitation gate on a [B, H, W, C] tensor.

  EfficientNet: mean -> 1x1 (bias) -> SiLU -> 1x1 (bias) -> sigmoid -> scale.
  ReXNet (``use_bn``): mean -> 1x1 (bias) -> BN -> ReLU -> 1x1 (bias) -> sigmoid -> scale.
  """
  reduced: int
  activation: str = 'silu'
  use_bn: bool = False
  layers: LayerConfig = LayerConfig()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    cfg = self.layers
    dense = lambda n, name: nn.Dense(n, kernel_init=conv_init, dtype=cfg.dtype,
                                     param_dtype=cfg.param_dtype, name=name)
    # [B, C] through the dense layers, not [B, 1, 1, C]: the TFLite converter turns a dense
    # layer on a static [1, 1, 1, C] into a rank-4 batch_matmul that it then rejects.
    s = jnp.mean(x, axis=(1, 2))
    s = dense(self.reduced, 'reduce')(s)
    if self.use_bn:
      s = batch_norm(cfg, train, name='bn')(s)
    s = get_activation(self.activation)(s)
    s = dense(x.shape[-1], 'expand')(s)
    return x * nn.sigmoid(jnp.expand_dims(s, (1, 2)))


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
