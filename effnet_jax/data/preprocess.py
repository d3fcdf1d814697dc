"""Per-example preprocessing in TF ops: decode, crop, resize, flip, augment, normalise.

Images stay uint8 until :func:`normalize`. An image arrives either encoded (tf.string: JPEG, PNG,
GIF, BMP) or decoded (uint8 [H, W, C], C in 1..4). Crops are expressed as a function of the image
height and width returning ``(offset_y, offset_x, crop_height, crop_width)``, so a JPEG is decoded
only inside its crop window (``tf.io.decode_and_crop_jpeg``).

All randomness is stateless: the same seed gives the same crop, flip and augmentation.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from effnet_jax.data import augment
from effnet_jax.data.config import Preprocessing

Box = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]  # offset_y, offset_x, height, width
BoxFn = Callable[[tf.Tensor, tf.Tensor], Box]
_SAMPLE_ATTEMPTS = 10


def center_box(crop_fraction: float) -> BoxFn:
  """Centre square of side ``int(crop_fraction * min(H, W))``, TF offsets ``((H - c) + 1) // 2``."""
  def box(height, width):
    shorter = tf.cast(tf.minimum(height, width), tf.float64)
    side = tf.cast(crop_fraction * shorter, tf.int32)
    return ((height - side + 1) // 2, (width - side + 1) // 2, side, side)
  return box


def inception_box(seed: tf.Tensor, prep: Preprocessing) -> BoxFn:
  """Random resized crop (``sample_distorted_bounding_box``, 10 attempts, the whole image as the
  object); where sampling fails (the box is the whole image) the eval centre crop instead."""
  def box(height, width):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([height, width, 3]), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed, min_object_covered=prep.min_object_covered,
        aspect_ratio_range=prep.aspect_range, area_range=prep.area_range,
        max_attempts=_SAMPLE_ATTEMPTS, use_image_if_no_bounding_boxes=True)
    sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
    fallback = tf.stack(center_box(prep.crop_fraction)(height, width))
    failed = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
    chosen = tf.where(failed, fallback, sampled)
    return chosen[0], chosen[1], chosen[2], chosen[3]
  return box


def _crop(image: tf.Tensor, box_fn: BoxFn | None) -> tf.Tensor:
  if box_fn is None:
    return image
  shape = tf.shape(image)
  offset_y, offset_x, height, width = box_fn(shape[0], shape[1])
  crop = tf.slice(image, tf.stack([offset_y, offset_x, 0]), tf.stack([height, width, -1]))
  crop.set_shape([None, None, image.shape[-1]])
  return crop


def _decode_jpeg(encoded: tf.Tensor, box_fn: BoxFn | None) -> tf.Tensor:
  if box_fn is None:
    return tf.io.decode_jpeg(encoded, channels=3)
  shape = tf.io.extract_jpeg_shape(encoded)
  window = tf.stack(box_fn(shape[0], shape[1]))
  return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)


def _decode_other(encoded: tf.Tensor, box_fn: BoxFn | None) -> tf.Tensor:
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return _crop(image, box_fn)


def decode_crop(image: tf.Tensor, box_fn: BoxFn | None = None) -> tf.Tensor:
  """The uint8 crop (the whole image for ``box_fn=None``) of an encoded or decoded image.

  Encoded images come out with 3 channels; decoded ones keep theirs (see :func:`to_rgb`)."""
  if image.dtype != tf.string:
    return _crop(image, box_fn)
  return tf.cond(tf.io.is_jpeg(image), lambda: _decode_jpeg(image, box_fn),
                 lambda: _decode_other(image, box_fn))


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Grey (1 channel, or 2 with alpha) repeated to 3 channels; alpha dropped."""
  channels = image.shape[-1]
  if channels in (1, 2):
    return tf.repeat(image[..., :1], 3, axis=-1)
  if channels in (3, 4):
    return image[..., :3]
  raise ValueError(f'an image with {channels} channels: expected 1 to 4')


def resize(image: tf.Tensor, size: int, interpolation: str) -> tf.Tensor:
  """Resize to ``size x size`` (uint8 in and out, rounded).

  bicubic: TF1 ``resize_bicubic`` (no half-pixel centres), as the EfficientNet V1 pipeline;
  bilinear: TF2 ``tf.image.resize`` (half-pixel centres), as the EfficientNetV2 pipeline.
  Neither antialiases."""
  if image.shape[0] == size and image.shape[1] == size:
    return image
  if interpolation == 'bicubic':
    resized = tf.raw_ops.ResizeBicubic(images=image[None], size=[size, size], align_corners=False,
                                       half_pixel_centers=False)[0]
  else:
    resized = tf.image.resize(image, [size, size], method='bilinear', antialias=False)
  return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def pad_random_crop(image: tf.Tensor, pad_pixels: int, seed: tf.Tensor) -> tf.Tensor:
  """CIFAR-style: zero-pad every side by ``pad_pixels``, then a random crop of the input size."""
  padded = tf.pad(image, [[pad_pixels, pad_pixels], [pad_pixels, pad_pixels], [0, 0]])
  return tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)


def normalize(image: tf.Tensor, mean: tuple, std: tuple) -> tf.Tensor:
  """``(x / 255 - mean) / std`` as float32."""
  scaled = tf.cast(image, tf.float32) / 255.0
  return (scaled - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _train_crop(image: tf.Tensor, seed: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  """Crop and resize to ``image_size`` as ``prep.train_crop`` says."""
  if prep.train_crop == 'inception':
    return resize(decode_crop(image, inception_box(seed, prep)), prep.image_size,
                  prep.interpolation)
  resized = resize(decode_crop(image), prep.image_size, prep.interpolation)
  if prep.train_crop == 'pad_crop':
    return pad_random_crop(resized, prep.pad_pixels, seed)
  return resized


def _augment(image: tf.Tensor, seed: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  if prep.augment == 'randaugment':
    return augment.randaugment(image, seed, prep.randaug_num_layers, prep.randaug_magnitude)
  if prep.augment == 'autoaugment':
    return augment.autoaugment(image, seed)
  return image


def train_image(image: tf.Tensor, seed: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  """Training view of one image: float32 [image_size, image_size, 3], deterministic in seed
  (``prep.augment_on_device``: uint8, before RandAugment and normalization, which the train
  step applies)."""
  crop_seed, flip_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  image = to_rgb(_train_crop(image, crop_seed, prep))
  if prep.flip:
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  if prep.augment_on_device:
    return image
  image = _augment(image, augment_seed, prep)
  return normalize(image, prep.mean, prep.std)


def eval_image(image: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  """Evaluation view: centre crop (or the whole image for 'squash'), resized to eval_size."""
  box_fn = center_box(prep.crop_fraction) if prep.crop_mode == 'center' else None
  image = resize(decode_crop(image, box_fn), prep.eval_size, prep.interpolation)
  return normalize(to_rgb(image), prep.mean, prep.std)
