"""RandAugment on the accelerator: batched, inside the jitted train step (``augment_on_device``).

The host pipeline then stops after crop and flip and ships uint8 images (a quarter of the float32
bytes); the train step applies RandAugment to each image of its shard and normalizes. This is
effnet_jax/data/augment.py ported to JAX op for op — the same 16 operations, level -> argument
mapping, grey fill and uint8 rounding — so an image given the same op and argument comes out the
same (tests/data/test_device_augment.py compares every op with the TF one). What differs is the
random stream: the op choice, random signs and cutout positions come from the step's JAX key
(fold of seed, step and device), not from the host's per-example TF seed.

Each image draws its own op per layer. How the batch is walked depends on the backend
(``impl='auto'``, resolved as the models' ``*_impl`` options are; both ways give the same bits):

* accelerators: ``vmap``, where the 16-way ``lax.switch`` becomes a select over all 16 results —
  every op on every image, a few elementwise passes each, expected to be cheap next to the
  network (not yet measured on a GPU: launch/gpu_check.sh's ``randaugment`` step times both);
* the CPU: ``lax.map``, a loop over the images in which XLA:CPU runs only the chosen branch of
  each switch. Computing all 16 ops cost 15-25 ms for 128 images of 32x32 (N=2, magnitude 9)
  and 270 ms for 32 images of 224x224 on the project's 2-core VM; the loop 2.6-3.3 and 18 ms.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from effnet_jax.data.augment_levels import (FILL, MAX_LEVEL, RANDAUGMENT_CONSTANTS,
                                            SHEAR_TRANSLATE, rotation_coefficients)
from effnet_jax.impls import resolve_impl

_GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


def _to_uint8(x: jax.Array) -> jax.Array:
  return jnp.round(jnp.clip(x, 0.0, 255.0)).astype(jnp.uint8)  # round half to even, as tf.round


def _apply_lut(image: jax.Array, lut: jax.Array) -> jax.Array:
  """``out[..., c] = lut[c, image[..., c]]`` for a [3, 256] table."""
  index = image.astype(jnp.int32) + jnp.arange(3, dtype=jnp.int32) * 256
  return lut.reshape(-1)[index].astype(jnp.uint8)


def auto_contrast(image: jax.Array) -> jax.Array:
  low = jnp.min(image, axis=(0, 1)).astype(jnp.float32)[:, None]
  high = jnp.max(image, axis=(0, 1)).astype(jnp.float32)[:, None]
  levels = jnp.arange(256, dtype=jnp.float32)[None, :]
  stretched = (levels - low) * (255.0 / jnp.maximum(high - low, 1.0))
  return _apply_lut(image, _to_uint8(jnp.where(high > low, stretched, levels)))


def equalize(image: jax.Array) -> jax.Array:
  index = image.astype(jnp.int32) + jnp.arange(3, dtype=jnp.int32) * 256
  histogram = jnp.bincount(index.reshape(-1), length=768).reshape(3, 256).astype(jnp.int32)
  levels = jnp.arange(256, dtype=jnp.int32)
  brightest = jnp.max(jnp.where(histogram > 0, levels, -1), axis=1)
  brightest_count = jnp.take_along_axis(histogram, brightest[:, None], axis=1)[:, 0]
  step = ((jnp.sum(histogram, axis=1) - brightest_count) // 255)[:, None]
  lut = (jnp.cumsum(histogram, axis=1) - histogram + step // 2) // jnp.maximum(step, 1)
  return _apply_lut(image, jnp.where(step > 0, jnp.clip(lut, 0, 255), levels))


def invert(image: jax.Array) -> jax.Array:
  return 255 - image


def posterize(image: jax.Array, bits: int) -> jax.Array:
  shift = 8 - min(max(bits, 0), 8)
  if shift == 8:
    return jnp.zeros_like(image)
  return (image >> shift) << shift


def _below(image: jax.Array, threshold: int) -> jax.Array:
  if threshold > 255:
    return jnp.ones_like(image, bool)
  return image < jnp.uint8(max(threshold, 0))


def solarize(image: jax.Array, threshold: int) -> jax.Array:
  return jnp.where(_below(image, threshold), image, 255 - image)


def solarize_add(image: jax.Array, addition: int, threshold: int = 128) -> jax.Array:
  a = min(max(addition, -255), 255)
  added = (jnp.minimum(image, jnp.uint8(255 - a)) + jnp.uint8(a) if a >= 0 else
           jnp.maximum(image, jnp.uint8(-a)) - jnp.uint8(-a))
  return jnp.where(_below(image, threshold), added, image)


def _blend(degenerate: jax.Array, image: jax.Array, factor: float) -> jax.Array:
  return _to_uint8(degenerate + factor * (image.astype(jnp.float32) - degenerate))


def _grey(image: jax.Array) -> jax.Array:
  x = image.astype(jnp.float32)
  r, g, b = (x[..., i:i + 1] * w for i, w in enumerate(_GREY_WEIGHTS))
  return jnp.round(r + g + b)


def color(image: jax.Array, factor: float) -> jax.Array:
  return _blend(_grey(image), image, factor)


def contrast(image: jax.Array, factor: float) -> jax.Array:
  return _blend(jnp.mean(_grey(image)), image, factor)


def brightness(image: jax.Array, factor: float) -> jax.Array:
  return _blend(jnp.float32(0.0), image, factor)


def sharpness(image: jax.Array, factor: float) -> jax.Array:
  """Blend with the 3x3 smoothed copy (centre weight 5, sum 13); border pixels unsmoothed."""
  x = image.astype(jnp.float32)
  height, width = x.shape[0], x.shape[1]
  total = 4.0 * x[1:-1, 1:-1]
  for dy in range(3):
    for dx in range(3):
      total = total + x[dy:height - 2 + dy, dx:width - 2 + dx]
  smoothed = jnp.pad(jnp.round(total / 13.0), ((1, 1), (1, 1), (0, 0)))
  interior = jnp.pad(jnp.ones(total.shape, bool), ((1, 1), (1, 1), (0, 0)))
  return _blend(jnp.where(interior, smoothed, x), image, factor)


def _round_half_away(x: jax.Array) -> jax.Array:
  """C's ``std::round`` (TF's nearest-neighbour transform), not round-half-to-even."""
  return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def _transform(image: jax.Array, coefficients) -> jax.Array:
  """Output pixel (x, y) takes the input at ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``, nearest
  neighbour, FILL outside (TF's ImageProjectiveTransformV3, NEAREST, CONSTANT)."""
  a0, a1, a2, b0, b1, b2 = (jnp.asarray(c, jnp.float32) for c in coefficients)
  height, width = image.shape[0], image.shape[1]
  y = jnp.arange(height, dtype=jnp.float32)[:, None]
  x = jnp.arange(width, dtype=jnp.float32)[None, :]
  in_x = _round_half_away(a0 * x + a1 * y + a2)
  in_y = _round_half_away(b0 * x + b1 * y + b2)
  inside = (in_x >= 0) & (in_x < width) & (in_y >= 0) & (in_y < height)
  flat = (jnp.clip(in_y, 0, height - 1).astype(jnp.int32) * width
          + jnp.clip(in_x, 0, width - 1).astype(jnp.int32))
  picked = image.reshape(height * width, -1)[flat]
  return jnp.where(inside[..., None], picked, jnp.uint8(FILL))


def rotate(image: jax.Array, degrees) -> jax.Array:
  radians = jnp.asarray(degrees, jnp.float32) * (math.pi / 180.0)
  return _transform(image, rotation_coefficients(jnp.cos(radians), jnp.sin(radians),
                                                 float(image.shape[0]), float(image.shape[1])))


shear_x, shear_y, translate_x, translate_y = (
    lambda image, value, op=op: _transform(image, SHEAR_TRANSLATE[op](value))
    for op in ('shear_x', 'shear_y', 'translate_x', 'translate_y'))


def cutout_at(image: jax.Array, half_size: int, center_y, center_x) -> jax.Array:
  rows = jnp.arange(image.shape[0])[:, None, None]
  cols = jnp.arange(image.shape[1])[None, :, None]
  inside = ((rows >= center_y - half_size) & (rows < center_y + half_size)
            & (cols >= center_x - half_size) & (cols < center_x + half_size))
  return jnp.where(inside, jnp.uint8(FILL), image)


def cutout(image: jax.Array, half_size: int, key: jax.Array) -> jax.Array:
  y_key, x_key = jax.random.split(key)
  return cutout_at(image, half_size, jax.random.randint(y_key, (), 0, image.shape[0]),
                   jax.random.randint(x_key, (), 0, image.shape[1]))


def _random_sign(value: float, key: jax.Array) -> jax.Array:
  return jnp.where(jax.random.uniform(key) < 0.5, -value, value)


def _enhance_factor(level: float) -> float:
  return level / MAX_LEVEL * 1.8 + 0.1


def _fraction(level: float) -> float:
  return level / MAX_LEVEL


def randaugment_ops(level: float, constants=RANDAUGMENT_CONSTANTS) -> dict:
  """name -> f(image, key) at ``level``: RandAugment's 16 operations, in augment.OPS's order."""
  f = _fraction(level)
  e = _enhance_factor(level)
  return {
      'AutoContrast': lambda image, key: auto_contrast(image),
      'Equalize': lambda image, key: equalize(image),
      'Invert': lambda image, key: invert(image),
      'Rotate': lambda image, key: rotate(image, _random_sign(30.0 * f, key)),
      'Posterize': lambda image, key: posterize(image, int(4 * f)),
      'Solarize': lambda image, key: solarize(image, int(256 * f)),
      'Color': lambda image, key: color(image, e),
      'Contrast': lambda image, key: contrast(image, e),
      'Brightness': lambda image, key: brightness(image, e),
      'Sharpness': lambda image, key: sharpness(image, e),
      'ShearX': lambda image, key: shear_x(image, _random_sign(0.3 * f, key)),
      'ShearY': lambda image, key: shear_y(image, _random_sign(0.3 * f, key)),
      'TranslateX': lambda image, key: translate_x(
          image, _random_sign(constants.translate * f, key)),
      'TranslateY': lambda image, key: translate_y(
          image, _random_sign(constants.translate * f, key)),
      'Cutout': lambda image, key: cutout(image, int(constants.cutout * f), key),
      'SolarizeAdd': lambda image, key: solarize_add(image, int(110 * f)),
  }


def randaugment_image(key: jax.Array, image: jax.Array, num_layers: int,
                      magnitude: float) -> jax.Array:
  """One uint8 [H, W, 3] image: ``num_layers`` ops drawn uniformly, each always applied."""
  branches = list(randaugment_ops(magnitude).values())
  for layer_key in jax.random.split(key, num_layers):
    choice_key, op_key = jax.random.split(layer_key)
    image = jax.lax.switch(jax.random.randint(choice_key, (), 0, len(branches)), branches,
                           image, op_key)
  return image


IMPLS = ('loop', 'vmap')


def resolve(impl: str = 'auto') -> str:
  """``impl`` with 'auto' resolved: 'loop' on the CPU backend, 'vmap' elsewhere."""
  return resolve_impl(impl, 'loop', 'vmap', IMPLS, 'RandAugment impl')


def randaugment(key: jax.Array, images: jax.Array, num_layers: int, magnitude: float,
                impl: str = 'auto') -> jax.Array:
  """A uint8 [B, H, W, 3] batch, every image with its own ops (keys split from ``key``).

  ``impl``: 'loop' (``lax.map`` over the images: only each image's chosen op runs), 'vmap'
  (every op on every image, then a select), 'auto' (the loop on the CPU, vmap elsewhere)."""
  if images.dtype != jnp.uint8:
    raise TypeError(f'device RandAugment takes uint8 images, got {images.dtype}')
  impl = resolve(impl)
  keys = jax.random.split(key, images.shape[0])

  def one(key, image):
    return randaugment_image(key, image, num_layers, magnitude)

  if impl == 'loop':
    return jax.lax.map(lambda pair: one(*pair), (keys, images))
  return jax.vmap(one)(keys, images)


def normalize(images: jax.Array, mean: tuple, std: tuple) -> jax.Array:
  """``(x / 255 - mean) / std`` in float32, as the host pipeline's preprocess.normalize."""
  scaled = images.astype(jnp.float32) / 255.0
  return (scaled - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
