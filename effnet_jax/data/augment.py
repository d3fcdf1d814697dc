"""RandAugment and AutoAugment (policy v0) on uint8 [H, W, 3] images, in stateless TF ops.

The 16 operations and the level -> argument mapping of the EfficientNet repositories
(docs/reference.md, 'AutoAugment and RandAugment'): levels are on a 0..10 scale (``MAX_LEVEL``) and
larger levels extrapolate; geometric ops fill with grey 128; rotate, shear and translate pick their
sign at random; RandAugment picks each layer's op uniformly and always applies it; AutoAugment picks
one of the 25 sub-policies of policy v0 and applies each of its two ops with its probability.
Posterize's bit count is clamped to 0..8 (levels above 20 would ask for more than 8 bits).
"""
from __future__ import annotations

import functools
import math

import tensorflow as tf

# The levels, constants and geometry shared with device_augment.py (which must not import TF).
from effnet_jax.data.augment_levels import (AUTOAUGMENT_CONSTANTS, FILL, MAX_LEVEL,  # noqa: F401
                                            RANDAUGMENT_CONSTANTS, SHEAR_TRANSLATE, Constants,
                                            rotation_coefficients)



# ---- pixel operations (uint8 in, uint8 out) ----

def _to_uint8(image: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def _apply_lut(image: tf.Tensor, lut: tf.Tensor) -> tf.Tensor:
  """Per-channel lookup: ``out[..., c] = lut[c, image[..., c]]`` (``lut``: [3, 256]); one
  gather over the image instead of one pass per arithmetic op."""
  index = tf.cast(image, tf.int32) + tf.range(3) * 256
  return tf.cast(tf.gather(tf.reshape(lut, [-1]), index), tf.uint8)


def auto_contrast(image: tf.Tensor) -> tf.Tensor:
  """Stretch each channel to 0..255 (a constant channel stays as it is)."""
  low = tf.cast(tf.reduce_min(image, axis=[0, 1]), tf.float32)[:, None]
  high = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.float32)[:, None]
  levels = tf.range(256, dtype=tf.float32)[None, :]
  stretched = (levels - low) * (255.0 / tf.maximum(high - low, 1.0))
  return _apply_lut(image, _to_uint8(tf.where(high > low, stretched, levels)))


def equalize(image: tf.Tensor) -> tf.Tensor:
  """PIL's histogram equalisation, each channel on its own (one histogram of 3 x 256 bins)."""
  index = tf.cast(image, tf.int32) + tf.range(3) * 256
  histogram = tf.reshape(tf.math.bincount(index, minlength=768, maxlength=768), [3, 256])
  levels = tf.range(256)
  brightest = tf.reduce_max(tf.where(histogram > 0, levels, -1), axis=1)
  brightest_count = tf.gather(histogram, brightest, batch_dims=1)
  step = ((tf.reduce_sum(histogram, axis=1) - brightest_count) // 255)[:, None]
  lut = (tf.cumsum(histogram, axis=1, exclusive=True) + step // 2) // tf.maximum(step, 1)
  return _apply_lut(image, tf.where(step > 0, tf.clip_by_value(lut, 0, 255), levels))


def invert(image: tf.Tensor) -> tf.Tensor:
  return 255 - image


def posterize(image: tf.Tensor, bits: int) -> tf.Tensor:
  """Keep the ``bits`` most significant bits (clamped to 0..8)."""
  shift = 8 - min(max(bits, 0), 8)
  if shift == 8:
    return tf.zeros_like(image)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def _below(image: tf.Tensor, threshold: int) -> tf.Tensor:
  """``image < threshold`` in uint8 (no int32 copy of the image)."""
  if threshold > 255:
    return tf.ones_like(image, tf.bool)
  return image < tf.constant(max(threshold, 0), tf.uint8)


def solarize(image: tf.Tensor, threshold: int) -> tf.Tensor:
  """Invert the pixels at or above ``threshold`` (256 and above: no change)."""
  return tf.where(_below(image, threshold), image, 255 - image)


def solarize_add(image: tf.Tensor, addition: int, threshold: int = 128) -> tf.Tensor:
  """Add ``addition`` (saturating) to the pixels below ``threshold`` (uint8 throughout)."""
  a = min(max(addition, -255), 255)
  added = (tf.minimum(image, 255 - a) + a if a >= 0 else
           tf.maximum(image, -a) - (-a))
  return tf.where(_below(image, threshold), added, image)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: float) -> tf.Tensor:
  """``degenerate + factor * (image - degenerate)``: factor 0 gives degenerate, 1 the image."""
  return _to_uint8(degenerate + factor * (tf.cast(image, tf.float32) - degenerate))


def _grey(image: tf.Tensor) -> tf.Tensor:
  return tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32)))


def color(image: tf.Tensor, factor: float) -> tf.Tensor:
  return _blend(_grey(image), image, factor)


def contrast(image: tf.Tensor, factor: float) -> tf.Tensor:
  return _blend(tf.reduce_mean(_grey(image)), image, factor)


def brightness(image: tf.Tensor, factor: float) -> tf.Tensor:
  return _blend(tf.constant(0.0), image, factor)


def sharpness(image: tf.Tensor, factor: float) -> tf.Tensor:
  """Blend with a smoothed copy (3x3 kernel, centre weight 5; the border pixels unsmoothed).

  The 3x3 sum is nine shifted slices (integer-valued floats: exact in any order), several
  times cheaper on one core than a 3-channel depthwise convolution."""
  x = tf.cast(image, tf.float32)
  height, width = tf.shape(x)[0], tf.shape(x)[1]
  total = 4.0 * x[1:-1, 1:-1]
  for dy in range(3):
    for dx in range(3):
      total += x[dy:height - 2 + dy, dx:width - 2 + dx]
  smoothed = tf.round(total / 13.0)
  border = [[1, 1], [1, 1], [0, 0]]
  interior = tf.pad(tf.ones_like(smoothed, tf.bool), border)
  return _blend(tf.where(interior, tf.pad(smoothed, border), x), image, factor)


def _transform(image: tf.Tensor, coefficients: list) -> tf.Tensor:
  """Output pixel (x, y) takes the input at ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` for
  coefficients ``[a0, a1, a2, b0, b1, b2]`` (nearest neighbour, FILL outside)."""
  transform = tf.stack([tf.cast(c, tf.float32) for c in coefficients] + [0.0, 0.0])
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
      fill_value=float(FILL), interpolation='NEAREST', fill_mode='CONSTANT')[0]
  out.set_shape(image.shape)
  return out


def rotate(image: tf.Tensor, degrees) -> tf.Tensor:
  """Rotate about the image centre."""
  radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
  shape = tf.cast(tf.shape(image), tf.float32)
  return _transform(image, rotation_coefficients(tf.cos(radians), tf.sin(radians), shape[0],
                                                 shape[1]))


shear_x, shear_y, translate_x, translate_y = (
    lambda image, value, op=op: _transform(image, SHEAR_TRANSLATE[op](value))
    for op in ('shear_x', 'shear_y', 'translate_x', 'translate_y'))


def cutout(image: tf.Tensor, half_size: int, seed: tf.Tensor) -> tf.Tensor:
  """Fill a square of side ``2 * half_size`` centred at a uniform pixel (clipped) with FILL."""
  shape = tf.shape(image)
  y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  center_y = tf.random.stateless_uniform([], y_seed, 0, shape[0], dtype=tf.int32)
  center_x = tf.random.stateless_uniform([], x_seed, 0, shape[1], dtype=tf.int32)
  rows = tf.range(shape[0])[:, None, None]
  cols = tf.range(shape[1])[None, :, None]
  inside = tf.logical_and(
      tf.logical_and(rows >= center_y - half_size, rows < center_y + half_size),
      tf.logical_and(cols >= center_x - half_size, cols < center_x + half_size))
  return tf.where(inside, tf.constant(FILL, tf.uint8), image)


# ---- levels -> operations ----

def _random_sign(value: float, seed: tf.Tensor) -> tf.Tensor:
  negate = tf.random.stateless_uniform([], seed) < 0.5
  return tf.where(negate, -value, value)


def _enhance_factor(level: float) -> float:
  return level / MAX_LEVEL * 1.8 + 0.1


def _fraction(level: float) -> float:
  return level / MAX_LEVEL


# name -> f(image, level, seed, constants): the 16 operations in RandAugment's order.
OPS = {
    'AutoContrast': lambda image, level, seed, c: auto_contrast(image),
    'Equalize': lambda image, level, seed, c: equalize(image),
    'Invert': lambda image, level, seed, c: invert(image),
    'Rotate': lambda image, level, seed, c: rotate(
        image, _random_sign(30.0 * _fraction(level), seed)),
    'Posterize': lambda image, level, seed, c: posterize(image, int(4 * _fraction(level))),
    'Solarize': lambda image, level, seed, c: solarize(image, int(256 * _fraction(level))),
    'Color': lambda image, level, seed, c: color(image, _enhance_factor(level)),
    'Contrast': lambda image, level, seed, c: contrast(image, _enhance_factor(level)),
    'Brightness': lambda image, level, seed, c: brightness(image, _enhance_factor(level)),
    'Sharpness': lambda image, level, seed, c: sharpness(image, _enhance_factor(level)),
    'ShearX': lambda image, level, seed, c: shear_x(
        image, _random_sign(0.3 * _fraction(level), seed)),
    'ShearY': lambda image, level, seed, c: shear_y(
        image, _random_sign(0.3 * _fraction(level), seed)),
    'TranslateX': lambda image, level, seed, c: translate_x(
        image, _random_sign(c.translate * _fraction(level), seed)),
    'TranslateY': lambda image, level, seed, c: translate_y(
        image, _random_sign(c.translate * _fraction(level), seed)),
    'Cutout': lambda image, level, seed, c: cutout(image, int(c.cutout * _fraction(level)), seed),
    'SolarizeAdd': lambda image, level, seed, c: solarize_add(image, int(110 * _fraction(level))),
}

# AutoAugment policy v0 (EfficientNet): 25 sub-policies of two (op, probability, level).
POLICY_V0 = (
    (('Equalize', 0.8, 1), ('ShearY', 0.8, 4)),
    (('Color', 0.4, 9), ('Equalize', 0.6, 3)),
    (('Color', 0.4, 1), ('Rotate', 0.6, 8)),
    (('Solarize', 0.8, 3), ('Equalize', 0.4, 7)),
    (('Solarize', 0.4, 2), ('Solarize', 0.6, 2)),
    (('Color', 0.2, 0), ('Equalize', 0.8, 8)),
    (('Equalize', 0.4, 8), ('SolarizeAdd', 0.8, 3)),
    (('ShearX', 0.2, 9), ('Rotate', 0.6, 8)),
    (('Color', 0.6, 1), ('Equalize', 1.0, 2)),
    (('Invert', 0.4, 9), ('Rotate', 0.6, 0)),
    (('Equalize', 1.0, 9), ('ShearY', 0.6, 3)),
    (('Color', 0.4, 7), ('Equalize', 0.6, 0)),
    (('Posterize', 0.4, 6), ('AutoContrast', 0.4, 7)),
    (('Solarize', 0.6, 8), ('Color', 0.6, 9)),
    (('Solarize', 0.2, 4), ('Rotate', 0.8, 9)),
    (('Rotate', 1.0, 7), ('TranslateY', 0.8, 9)),
    (('ShearX', 0.0, 0), ('Solarize', 0.8, 4)),
    (('ShearY', 0.8, 0), ('Color', 0.6, 4)),
    (('Color', 1.0, 0), ('Rotate', 0.6, 2)),
    (('Equalize', 0.8, 4), ('Equalize', 0.0, 8)),
    (('Equalize', 1.0, 4), ('AutoContrast', 0.6, 2)),
    (('ShearY', 0.4, 7), ('SolarizeAdd', 0.6, 7)),
    (('Posterize', 0.8, 2), ('Solarize', 0.6, 10)),
    (('Solarize', 0.6, 8), ('Equalize', 0.6, 1)),
    (('Color', 0.8, 6), ('Rotate', 0.4, 5)),
)


def apply_op(name: str, image: tf.Tensor, level: float, seed: tf.Tensor,
             constants: Constants = RANDAUGMENT_CONSTANTS) -> tf.Tensor:
  """One named operation at a level (seed: the random sign, or the cutout position)."""
  return OPS[name](image, level, seed, constants)


def _uniform_index(seed: tf.Tensor, count: int) -> tf.Tensor:
  return tf.random.stateless_uniform([], seed, 0, count, dtype=tf.int32)


def randaugment(image: tf.Tensor, seed: tf.Tensor, num_layers: int,
                magnitude: float) -> tf.Tensor:
  """``num_layers`` ops, each drawn uniformly from the 16 and always applied at ``magnitude``."""
  for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, num_layers)):
    choice_seed, op_seed = tf.unstack(tf.random.experimental.stateless_split(layer_seed, 2))
    image = tf.switch_case(_uniform_index(choice_seed, len(OPS)), [
        functools.partial(apply_op, name, image, magnitude, op_seed, RANDAUGMENT_CONSTANTS)
        for name in OPS])
  return image


def _apply_sub_policy(sub_policy: tuple, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  for (name, probability, level), op_seed in zip(
      sub_policy, tf.unstack(tf.random.experimental.stateless_split(seed, len(sub_policy)))):
    gate_seed, arg_seed = tf.unstack(tf.random.experimental.stateless_split(op_seed, 2))
    image = tf.cond(
        tf.random.stateless_uniform([], gate_seed) < probability,
        functools.partial(apply_op, name, image, level, arg_seed, AUTOAUGMENT_CONSTANTS),
        functools.partial(tf.identity, image))
  return image


def autoaugment(image: tf.Tensor, seed: tf.Tensor, policy: tuple = POLICY_V0) -> tf.Tensor:
  """One sub-policy of ``policy``, drawn uniformly."""
  choice_seed, policy_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  return tf.switch_case(_uniform_index(choice_seed, len(policy)), [
      functools.partial(_apply_sub_policy, sub_policy, image, policy_seed)
      for sub_policy in policy])
