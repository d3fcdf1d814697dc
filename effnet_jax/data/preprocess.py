"""Per-example preprocessing in TF ops: decode, crop, resize, flip, augment, normalise.

Images stay uint8 until :func:`normalize`. An image arrives either encoded (tf.string) or decoded
(uint8 [H, W, C], C in 1..4); the pipelines pass an encoded one through :func:`check_pixel_limit`
(its header's size against ``max_image_pixels``) before decoding it. TensorFlow decodes JPEG, PNG,
GIF, BMP, WebP and JPEG XL; Pillow the other formats it reads (TIFF, PNM, TGA, JPEG 2000, ...),
inside the same graph (``tf.numpy_function``), so training, evaluation and ``effnet_jax.predict``
decode every file alike.
Crops are expressed as a function of the image height and width returning ``(offset_y, offset_x,
crop_height, crop_width)``, so a JPEG is decoded only inside its crop window
(``tf.io.decode_and_crop_jpeg``).

All randomness is stateless: the same seed gives the same crop, flip and augmentation.
"""
from __future__ import annotations

import io
import sys
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from effnet_jax import pixel_limit
from effnet_jax.data import augment
from effnet_jax.data.config import Preprocessing

Box = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]  # offset_y, offset_x, height, width
BoxFn = Callable[[tf.Tensor, tf.Tensor], Box]
_SAMPLE_ATTEMPTS = 10


class _Field(NamedTuple):
  """An image side in a file header: the unsigned integer of ``size`` bytes at ``offset``,
  shifted right by ``shift`` bits, cut to ``bits`` bits, plus ``add``."""
  offset: int
  size: int
  big_endian: bool = False
  shift: int = 0
  bits: int = 32
  add: int = 0


# Formats with the image size at fixed header offsets: the bytes that identify the format
# ({offset: bytes}), the height field, the width field. BMP's are int32 (a negative height: rows
# stored top-down); WebP lossless (VP8L) and extended (VP8X) store each side minus 1.
_HEADERS = (
    ({0: b'\x89PNG\r\n\x1a\n'}, _Field(20, 4, big_endian=True), _Field(16, 4, big_endian=True)),
    ({0: b'GIF'}, _Field(8, 2), _Field(6, 2)),
    ({0: b'BM'}, _Field(22, 4), _Field(18, 4)),
    ({0: b'RIFF', 8: b'WEBPVP8 '}, _Field(28, 2, bits=14), _Field(26, 2, bits=14)),
    ({0: b'RIFF', 8: b'WEBPVP8L'}, _Field(21, 4, shift=14, bits=14, add=1),
     _Field(21, 4, bits=14, add=1)),
    ({0: b'RIFF', 8: b'WEBPVP8X'}, _Field(27, 3, bits=24, add=1), _Field(24, 3, bits=24, add=1)),
)
_HEADER_BYTES = 30  # up to the last field (VP8X height)
_MAGIC_BYTES = 16
_JPEG_XL, _JPEG_XL_CONTAINER = b'\xff\x0a', b'\x00\x00\x00\x0cJXL \r\n\x87\n'
# The error of an encoded image that neither TensorFlow nor Pillow decodes.
NOT_AN_IMAGE = 'neither TensorFlow nor Pillow decodes it'


def _header_tables() -> dict[str, np.ndarray]:
  """:data:`_HEADERS` as arrays, so that one matrix product reads every field of every format
  (a handful of ops per image instead of a hundred: the check runs on every example)."""
  formats = len(_HEADERS)
  tables = {'magic': np.zeros((formats, _MAGIC_BYTES), np.int64),
            'compared': np.zeros((formats, _MAGIC_BYTES), bool),
            'weights': np.zeros((2 * formats, _HEADER_BYTES)),
            'shift': np.zeros(2 * formats, np.int64), 'modulus': np.zeros(2 * formats, np.int64),
            'add': np.zeros(2 * formats, np.int64)}
  for index, (magics, *fields) in enumerate(_HEADERS):
    for offset, magic in magics.items():
      tables['magic'][index, offset:offset + len(magic)] = list(magic)
      tables['compared'][index, offset:offset + len(magic)] = True
    for row, field in enumerate(fields, 2 * index):
      weights = 256.0 ** np.arange(field.size)
      tables['weights'][row, field.offset:field.offset + field.size] = (
          weights[::-1] if field.big_endian else weights)
      tables['shift'][row], tables['modulus'][row] = field.shift, 2**field.bits
      tables['add'][row] = field.add
  return tables


_HEADER_TABLES = _header_tables()


def _header_formats(encoded: tf.Tensor) -> tf.Tensor:
  """Which format of :data:`_HEADERS` the first bytes of ``encoded`` show (bool, one per format;
  at most one true)."""
  tables = _HEADER_TABLES
  magic = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, _MAGIC_BYTES), tf.uint8,
                                   fixed_length=_MAGIC_BYTES), tf.int64)  # zero-padded
  return tf.reduce_all(tf.logical_or(magic == tables['magic'], ~tables['compared']), axis=1)


def image_shape(encoded: tf.Tensor) -> tf.Tensor:
  """``[height, width]`` (int64) of an encoded JPEG, PNG, GIF, BMP or WebP image, read from its
  header without decoding it; ``[0, 0]`` for other data (not an image, a format TensorFlow does
  not decode such as TIFF, or JPEG XL, which it decodes but whose header this does not read).
  JPEG's size is found by ``tf.io.extract_jpeg_shape``, the others' at :data:`_HEADERS`."""
  tables = _HEADER_TABLES
  header = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, _HEADER_BYTES), tf.uint8,
                                    fixed_length=_HEADER_BYTES), tf.int64)  # zero-padded
  numbers = tf.cast(tf.linalg.matvec(tables['weights'], tf.cast(header, tf.float64)), tf.int64)
  sides = tf.bitwise.right_shift(numbers, tables['shift']) % tables['modulus'] + tables['add']
  sides = tf.where(sides < 2**31, sides, 2**32 - sides)  # BMP's int32; no other side gets there
  shape = tf.reduce_sum(tf.where(_header_formats(encoded)[:, None], tf.reshape(sides, [-1, 2]),
                                 0), axis=0)
  return tf.cond(tf.io.is_jpeg(encoded),
                 lambda: tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64), lambda: shape)


def _decoded_by_tensorflow(encoded: tf.Tensor) -> tf.Tensor:
  """Whether ``encoded`` is in a format TensorFlow decodes (JPEG, the formats of :data:`_HEADERS`,
  JPEG XL), by its first bytes."""
  jpeg_xl = tf.logical_or(tf.strings.substr(encoded, 0, len(_JPEG_XL)) == _JPEG_XL,
                          tf.strings.substr(encoded, 0, len(_JPEG_XL_CONTAINER))
                          == _JPEG_XL_CONTAINER)
  return tf.reduce_any(tf.concat([[tf.io.is_jpeg(encoded), jpeg_xl],
                                  _header_formats(encoded)], axis=0))


def _pillow_open(encoded: bytes):
  """Pillow's image of ``encoded`` (only the header read), with Pillow's own pixel limit off:
  :func:`check_pixel_limit` applies the pipeline's. ``encoded``: bytes, or (eagerly) a 0-d array."""
  return pixel_limit.open_image(io.BytesIO(np.asarray(encoded).item()), sys.maxsize)


def _pillow_shape(encoded: bytes) -> np.ndarray:
  """``[height, width]`` from the header as Pillow reads it; ``[0, 0]`` where it does not."""
  try:
    with _pillow_open(encoded) as image:
      return np.array([image.height, image.width], np.int64)
  except Exception:  # pylint: disable=broad-except  (Pillow's plugins raise many kinds)
    return np.zeros(2, np.int64)


def _pillow_rgb(encoded: bytes) -> tuple[np.ndarray, bool]:
  """``(uint8 [H, W, 3], True)`` decoded by Pillow, or ``(empty, False)`` where it cannot: the
  graph raises the error (a Python exception in a tf.data map would log its traceback)."""
  try:
    with _pillow_open(encoded) as image:
      return np.asarray(image.convert('RGB')), True
  except Exception:  # pylint: disable=broad-except  (Pillow's plugins raise many kinds)
    return np.zeros((0, 0, 3), np.uint8), False


def check_pixel_limit(image: tf.Tensor, max_image_pixels: int) -> tf.Tensor:
  """``image``, once its header shows at most ``max_image_pixels`` pixels (an encoded one; a
  decoded one is returned as it is). Over the limit: ``InvalidArgumentError`` naming the size and
  the limit (``pixel_limit.TOO_MANY_PIXELS``), like a corrupt file's. Whatever decodes the result
  depends on the check, so an oversized image costs its header read, never its decoded size.
  Where :func:`image_shape` does not read the header, Pillow does (TIFF, ...)."""
  if image.dtype != tf.string:
    return image
  shape = image_shape(image)
  shape = tf.cond(tf.reduce_all(shape == 0),
                  lambda: tf.reshape(tf.numpy_function(_pillow_shape, [image], tf.int64,
                                                       stateful=False), [2]),
                  lambda: shape)
  height, width = tf.unstack(shape)
  too_many = tf.strings.format(pixel_limit.TOO_MANY_PIXELS,
                               (width, height, tf.constant(max_image_pixels, tf.int64)))
  with tf.control_dependencies([tf.debugging.Assert(height * width <= max_image_pixels,
                                                    [too_many])]):
    return tf.identity(image)


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


def _decode_with_pillow(encoded: tf.Tensor) -> tf.Tensor:
  image, decoded = tf.numpy_function(_pillow_rgb, [encoded], [tf.uint8, tf.bool], stateful=False)
  with tf.control_dependencies([tf.debugging.Assert(decoded, [NOT_AN_IMAGE])]):
    return tf.identity(image)


def _decode_other(encoded: tf.Tensor, box_fn: BoxFn | None) -> tf.Tensor:
  image = tf.cond(_decoded_by_tensorflow(encoded),
                  lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False),
                  lambda: _decode_with_pillow(encoded))
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


def eval_pixels(image: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  """Evaluation view before normalisation: centre crop (or the whole image for 'squash'),
  resized to eval_image_size, uint8 RGB."""
  box_fn = center_box(prep.crop_fraction) if prep.crop_mode == 'center' else None
  return to_rgb(resize(decode_crop(image, box_fn), prep.eval_image_size, prep.interpolation))


def eval_image(image: tf.Tensor, prep: Preprocessing) -> tf.Tensor:
  """Evaluation view: :func:`eval_pixels`, normalised."""
  return normalize(eval_pixels(image, prep), prep.mean, prep.std)
