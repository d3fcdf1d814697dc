"""The Swin Transformer family (Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows"), with timm 1.0's module layout so that its weights convert one to one.

Not a stem/stages/head CNN: the family brings its own ``build``, ``architecture`` and
``adapt_variables`` hooks. The network, on NHWC images:

* patch embedding: a ``patch_size`` x ``patch_size`` conv of stride ``patch_size`` to
  ``stem_channels`` (the embedding width C), then LayerNorm;
* four stages at widths C, 2C, 4C, 8C; stages 2-4 start with patch merging (the 2x2
  neighbourhood of each token concatenated, LayerNorm, a bias-free linear map 4C' -> 2C'),
  where timm 1.0 puts it (the original code ends stages 1-3 with it: the same computation);
* Swin blocks: ``x + attn(LN(x))``, then ``x + mlp(LN(x))`` (4x wide, exact erf GELU), each
  residual branch with stochastic depth. The attention is multi-head self-attention inside
  non-overlapping windows of ``window_size`` x ``window_size`` tokens plus a learned relative
  position bias (a ``(2w - 1)^2 x heads`` table indexed by the fixed relative position of each
  token pair). Every second block shifts the token grid cyclically by half a window first
  (and back after), with a mask that keeps tokens that were not neighbours before the shift
  from attending to each other (-100 added to their logits, as the official code and timm);
* LayerNorm, global average pool, dropout, the classifier.

Windows: as in the original (and timm), a stage whose token grid is not larger than the
window uses the whole grid as its window and does not shift. The windows are fixed by the
config (``window_size`` and the token grids of ``image_size``, as timm fixes them by its
``img_size``), so the bias tables have the same shapes whatever size the model is called at.
An input is accepted when every stage's grid is a multiple of its window and even before each
patch merging; any other size is a ValueError naming the sizes that work. (timm pads such
grids instead; the original code rejects them.)
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from effnet_jax.models.layers import DropPath, get_activation
from effnet_jax.models.registry import (Family, ModelConfig, get_dtype, register,
                                        register_family)

MLP_RATIO = 4  # hidden width of the block MLP / its input width (every Swin variant)
MASKED = -100.0  # added to the logits of token pairs the shifted-window mask separates
weight_init = nn.initializers.truncated_normal(0.02)  # timm's trunc_normal_(std=.02)


# ---------------------------------------------------------------------------------------------
# Window geometry (static: numpy at trace time).

def token_grid(image_size: int, patch_size: int, num_stages: int) -> list[int]:
  """Token grid side of each stage (patch embedding, then halved by each patch merging)."""
  grid = image_size // patch_size
  return [grid // 2 ** i for i in range(num_stages)]


def stage_windows(config: ModelConfig) -> tuple[int, ...]:
  """Window side of each stage: ``window_size``, or the whole token grid of ``image_size``
  where that is not larger (the original rule; those stages do not shift)."""
  grids = token_grid(config.image_size, config.patch_size, len(config.depths))
  return tuple(min(g, config.window_size) for g in grids)


def size_problem(size: int, patch_size: int, windows: Sequence[int]) -> str | None:
  """Why an input side of ``size`` pixels does not work with these stage windows (None: it
  works)."""
  if size % patch_size:
    return f'{size} is not a multiple of the patch size {patch_size}'
  grid = size // patch_size
  for i, window in enumerate(windows):
    if i:
      if grid % 2:
        return f'stage {i} ends with a token grid of {grid}x{grid}, odd, which patch merging halves'
      grid //= 2
    if grid % window:
      return (f'stage {i + 1} has a token grid of {grid}x{grid}, not a multiple of its window '
              f'{window}')
  return None


def working_sizes(patch_size: int, windows: Sequence[int], count: int = 4) -> list[int]:
  """The ``count`` smallest input sides that work with these stage windows."""
  step = patch_size * 2 ** (len(windows) - 1)  # every size that works is a multiple of this
  sizes, size = [], step
  while len(sizes) < count and size <= step * 1000:
    if size_problem(size, patch_size, windows) is None:
      sizes.append(size)
    size += step
  return sizes


@functools.lru_cache(maxsize=None)
def relative_position_index(window: int) -> np.ndarray:
  """``[w*w, w*w]`` row of the bias table for each (query, key) token pair of a window: their
  relative offset (dy, dx), both in [-(w - 1), w - 1], as ``(dy + w - 1) * (2w - 1) + dx + w - 1``."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing='ij')).reshape(2, -1)
  relative = coords[:, :, None] - coords[:, None, :] + window - 1  # [2, N, N]
  return relative[0] * (2 * window - 1) + relative[1]


@functools.lru_cache(maxsize=None)
def shift_mask(grid: int, window: int, shift: int) -> np.ndarray:
  """``[windows, w*w, w*w]``: 0 where two tokens of a shifted window were neighbours before the
  cyclic shift (same region of the grid), ``MASKED`` where the shift brought them together."""
  region = np.zeros((grid, grid), np.int32)
  bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
  for i, rows in enumerate(bounds):
    for j, cols in enumerate(bounds):
      region[rows, cols] = 3 * i + j
  regions = partition(region[None, :, :, None], window)[0, :, :, 0]  # [windows, N]
  same = regions[:, :, None] == regions[:, None, :]
  return np.where(same, 0.0, MASKED).astype(np.float32)


def partition(x, window: int):
  """``[B, H, W, C]`` -> ``[B, windows, w*w, C]`` (windows in row-major order)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // window) * (w // window), window * window, c)


def merge(windows, window: int, h: int, w: int):
  """Inverse of :func:`partition`."""
  b, _, _, c = windows.shape
  x = windows.reshape(b, h // window, w // window, window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


# ---------------------------------------------------------------------------------------------
# Modules.

@dataclasses.dataclass(frozen=True)
class _Settings:
  """What every layer of one network shares."""
  eps: float
  activation: str
  dtype: Any
  param_dtype: Any

  def dense(self, features: int, name: str, use_bias: bool = True) -> nn.Dense:
    return nn.Dense(features, use_bias=use_bias, kernel_init=weight_init, dtype=self.dtype,
                    param_dtype=self.param_dtype, name=name)

  def norm(self, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=self.eps, dtype=self.dtype, param_dtype=self.param_dtype,
                        name=name)


class WindowAttention(nn.Module):
  """Multi-head self-attention within each window, with the relative position bias.

  Input ``[B, windows, w*w, C]``; ``mask`` ``[windows, w*w, w*w]`` or None.
  """
  num_heads: int
  window: int
  settings: _Settings

  def matmul_macs(self, x, mask=None) -> int:
    """Multiply-adds of q·kᵀ and attention·v per image (``utils.profile`` counts them; the
    qkv and output projections are Dense layers it counts itself)."""
    windows, tokens, channels = x.shape[1:]
    return 2 * windows * tokens * tokens * channels

  @nn.compact
  def __call__(self, x, mask=None):
    s = self.settings
    b, windows, tokens, channels = x.shape
    heads = self.num_heads
    table = self.param('relative_position_bias_table', weight_init,
                       ((2 * self.window - 1) ** 2, heads), s.param_dtype)
    qkv = s.dense(3 * channels, 'qkv')(x).reshape(b, windows, tokens, 3, heads, -1)
    q, k, v = (qkv[:, :, :, i] for i in range(3))  # [B, windows, N, heads, head dim]
    q = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
    logits = jnp.einsum('bwnhd,bwmhd->bwhnm', q, k)
    bias = table[relative_position_index(self.window).reshape(-1)]
    logits = logits + bias.reshape(tokens, tokens, heads).transpose(2, 0, 1).astype(logits.dtype)
    if mask is not None:
      logits = logits + jnp.asarray(mask, logits.dtype)[:, None]
    weights = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum('bwhnm,bwmhd->bwnhd', weights, v).reshape(b, windows, tokens, channels)
    return s.dense(channels, 'proj')(out)


class SwinBlock(nn.Module):
  """LN -> (shifted) window attention -> residual; LN -> MLP -> residual."""
  num_heads: int
  window: int
  drop_path: float
  settings: _Settings

  @nn.compact
  def __call__(self, x, shifted: bool, train: bool = False):
    s = self.settings
    b, h, w, c = x.shape
    window = self.window
    shift = window // 2 if shifted and h > window else 0  # no shift where a window is the grid
    y = s.norm('norm1')(x)
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    mask = shift_mask(h, window, shift) if shift else None
    y = WindowAttention(self.num_heads, window, s, name='attn')(partition(y, window), mask)
    y = merge(y, window, h, w)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    x = x + DropPath(self.drop_path)(y, train)
    y = s.norm('norm2')(x)
    y = s.dense(MLP_RATIO * c, 'fc1')(y)
    y = s.dense(c, 'fc2')(get_activation(s.activation)(y))
    return x + DropPath(self.drop_path)(y, train)


class PatchMerging(nn.Module):
  """Each 2x2 token neighbourhood concatenated (order (0,0), (1,0), (0,1), (1,1) as (row,
  column), the original's), LayerNorm, bias-free linear map to ``features``."""
  features: int
  settings: _Settings

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5).reshape(
        b, h // 2, w // 2, 4 * c)
    x = self.settings.norm('norm')(x)
    return self.settings.dense(self.features, 'reduction', use_bias=False)(x)


class PatchEmbed(nn.Module):
  """``patch`` x ``patch`` conv of stride ``patch`` (``proj``), then LayerNorm (``norm``)."""
  features: int
  patch: int
  settings: _Settings

  @nn.compact
  def __call__(self, images):
    s = self.settings
    x = nn.Conv(self.features, (self.patch, self.patch), strides=self.patch, padding='VALID',
                dtype=s.dtype, param_dtype=s.param_dtype, name='proj')(images)
    return s.norm('norm')(x)


class SwinStage(nn.Module):
  """[patch merging to ``features``] -> ``len(drop_paths)`` Swin blocks, every second shifted."""
  features: int
  num_heads: int
  window: int
  drop_paths: tuple[float, ...]
  downsample: bool
  settings: _Settings

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.downsample:
      x = PatchMerging(self.features, self.settings, name='downsample')(x)
    for j, rate in enumerate(self.drop_paths):
      x = SwinBlock(self.num_heads, self.window, rate, self.settings, name=f'blocks_{j}')(
          x, shifted=j % 2 == 1, train=train)
    return x


class SwinTransformer(nn.Module):
  """Image classifier on NHWC float images (the family's ``build``; see the module docstring).

  Attributes:
    model_name, image_size: named in the error of an input size that does not work.
    patch_size, embed_dim, depths, num_heads: the architecture.
    windows: the window side of each stage (:func:`stage_windows`).
    num_classes: classifier width; 0 drops the classifier (pooled features out).
    dropout_rate: dropout before the classifier; drop_path_rate: stochastic depth of the last
      block, linear from 0 over all blocks (timm's per-block rule).
  """
  model_name: str
  image_size: int
  patch_size: int
  embed_dim: int
  depths: tuple[int, ...]
  num_heads: tuple[int, ...]
  windows: tuple[int, ...]
  num_classes: int
  dropout_rate: float
  drop_path_rate: float
  settings: _Settings

  def setup(self):
    s = self.settings
    self.patch_embed = PatchEmbed(self.embed_dim, self.patch_size, s)
    rates = [float(r) for r in np.linspace(0.0, self.drop_path_rate, sum(self.depths))]
    starts = np.cumsum((0,) + tuple(self.depths))
    self.stages = [
        SwinStage(self.embed_dim * 2 ** i, heads, window, tuple(rates[starts[i]:starts[i + 1]]),
                  i > 0, s)
        for i, (heads, window) in enumerate(zip(self.num_heads, self.windows))]
    self.norm = s.norm(None)
    self.head_dropout = nn.Dropout(self.dropout_rate)
    if self.num_classes:
      self.classifier = s.dense(self.num_classes, None)

  def _check_size(self, images):
    sides = sorted(set(images.shape[1:3]))
    problems = [p for p in (size_problem(n, self.patch_size, self.windows) for n in sides) if p]
    if not problems:
      return images
    if self.is_initializing():
      # The parameters do not depend on the input size (the windows are the config's), and
      # the code base initialises models at a small size: initialise at the config's size.
      side = self.image_size
      if size_problem(side, self.patch_size, self.windows) is None:
        return jnp.zeros((images.shape[0], side, side, images.shape[3]), images.dtype)
    raise ValueError(
        f'{self.model_name} (patch {self.patch_size}, windows {list(self.windows)} per stage '
        f'at image_size {self.image_size}) cannot take '
        f'{"x".join(map(str, images.shape[1:3]))} images: {problems[0]}. Sizes that work: '
        f'{", ".join(map(str, working_sizes(self.patch_size, self.windows)))}, ... (another '
        'size needs image_size, and window_size, set so that every stage\'s token grid is a '
        'multiple of its window)')

  def forward_features(self, images, train: bool = False) -> dict[str, jax.Array]:
    """Feature maps: ``stem`` (the patch embedding), ``stage1`` ... ``stage4`` and ``head`` (the
    final LayerNorm)."""
    images = self._check_size(jnp.asarray(images, self.settings.dtype))
    x = self.patch_embed(images)
    features = {'stem': x}
    for i, stage in enumerate(self.stages):
      x = stage(x, train)
      features[f'stage{i + 1}'] = x
    features['head'] = self.norm(x)
    return features

  def __call__(self, images, train: bool = False):
    """Logits (float32; float64 in a float64 model), or the pooled features without a
    classifier."""
    x = jnp.mean(self.forward_features(images, train)['head'], axis=(1, 2))
    x = self.head_dropout(x, deterministic=not train)
    if self.num_classes:
      x = self.classifier(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


# ---------------------------------------------------------------------------------------------
# Fine-tuning at another window: the relative position bias tables, resized.

def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
  """The cubic convolution kernel PyTorch's bicubic interpolation uses (a = -0.75)."""
  t = np.abs(t)
  return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                  np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
  """``[size_out, size_in]`` linear map of ``torch.nn.functional.interpolate(mode='bicubic',
  align_corners=False)`` along one axis (border samples repeated); the identity at equal sizes."""
  matrix = np.zeros((size_out, size_in))
  for i in range(size_out):
    source = (i + 0.5) * size_in / size_out - 0.5
    base = math.floor(source)
    for tap in range(base - 1, base + 3):
      matrix[i, min(max(tap, 0), size_in - 1)] += _cubic(np.asarray(source - tap))
  return matrix


def resize_bias_table(table, window: int):
  """A ``[(2v - 1)^2, heads]`` relative position bias table for a window of side ``window``:
  bicubic interpolation of each head's ``(2v - 1) x (2v - 1)`` offset grid, as the official
  Swin code fine-tunes at another window (utils.load_pretrained)."""
  table = np.asarray(table)
  side_in = math.isqrt(table.shape[0])
  side_out = 2 * window - 1
  if side_in ** 2 != table.shape[0]:
    raise ValueError(f'a relative position bias table of {table.shape[0]} rows is not square')
  if side_in == side_out:
    return table
  m = bicubic_matrix(side_in, side_out)
  grid = table.astype(np.float64).reshape(side_in, side_in, -1)
  resized = np.einsum('ia,abh,jb->ijh', m, grid, m)
  return resized.reshape(side_out * side_out, -1).astype(table.dtype)


def adapt_variables(variables: dict[str, Any], weights: ModelConfig, run: ModelConfig
                    ) -> dict[str, Any]:
  """The ``Family.adapt_variables`` hook: weights of ``weights``' windows for ``run``'s (e.g.
  swin_base at 224 px, window 7 -> 384 px, window 12), every bias table resized."""
  windows = stage_windows(run)
  if windows == stage_windows(weights):
    return variables
  params = jax.tree_util.tree_map(lambda x: x, dict(variables['params']))  # a copy to edit
  for i, window in enumerate(windows):
    stage = params.get(f'stages_{i}', {})
    for block in stage.values():
      attn = block.get('attn') if isinstance(block, dict) else None
      if attn is not None and 'relative_position_bias_table' in attn:
        attn['relative_position_bias_table'] = resize_bias_table(
            attn['relative_position_bias_table'], window)
  return {**variables, 'params': params}


# ---------------------------------------------------------------------------------------------
# The family hooks and the variants.

def build(config: ModelConfig) -> SwinTransformer:
  if config.out_indices is not None:
    raise ValueError(f'{config.name}: the swin family has no backbone (feature levels) yet')
  if len(config.depths) != len(config.num_heads) or not config.depths:
    raise ValueError(f'{config.name}: depths {config.depths} and num_heads {config.num_heads} '
                     'must give one entry per stage')
  if config.width_mult != 1.0 or config.depth_mult != 1.0:
    raise ValueError(f'{config.name}: the swin family has no width/depth multipliers (phi, '
                     f'width_mult={config.width_mult:g}, depth_mult={config.depth_mult:g}); '
                     'size a Swin with stem_channels (C), depths and num_heads')
  if not config.patch_size or not config.window_size:
    raise ValueError(f'{config.name}: a swin model needs patch_size and window_size')
  return SwinTransformer(
      model_name=config.name, image_size=config.image_size, patch_size=config.patch_size,
      embed_dim=config.stem_channels, depths=tuple(config.depths),
      num_heads=tuple(config.num_heads), windows=stage_windows(config),
      num_classes=config.num_classes, dropout_rate=config.dropout_rate,
      drop_path_rate=config.drop_path_rate,
      settings=_Settings(eps=config.bn_eps, activation=config.activation,
                         dtype=get_dtype(config.dtype), param_dtype=get_dtype(config.param_dtype)))


def architecture(config: ModelConfig) -> dict[str, Any]:
  """What fine-tuning compares: everything but the windows (other windows load through
  :func:`adapt_variables`)."""
  return {'patch_size': config.patch_size, 'embed_dim': config.stem_channels,
          'depths': tuple(config.depths), 'num_heads': tuple(config.num_heads)}


FAMILY = register_family(Family(
    name='swin', build=build, weight_layouts={'timm': 'timm_swin'}, architecture=architecture,
    adapt_variables=adapt_variables))

# Liu et al. 2021, Table 1(a) / the official configs: C, blocks per stage, heads per stage, and
# the stochastic depth of the official recipe (0.2 / 0.3 / 0.5; timm's constructor default is 0.1).
for _size, _embed, _depths, _heads, _drop_path in (
    ('tiny', 96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2),
    ('small', 96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3),
    ('base', 128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5)):
  register(ModelConfig(
      name=f'swin_{_size}_patch4_window7_224', family='swin', stem_channels=_embed,
      patch_size=4, window_size=7, depths=_depths, num_heads=_heads, activation='gelu',
      bn_eps=1e-5, dropout_rate=0.0, drop_path_rate=_drop_path, image_size=224,
      eval_image_size=224, crop_fraction=0.9, interpolation='bicubic'))
