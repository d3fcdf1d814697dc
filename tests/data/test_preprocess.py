"""Crops, resizing, decoding and normalisation of single images."""
import io
import struct

import numpy as np
import pytest
import tensorflow as tf

from PIL import Image

from data_helpers import encode_image, random_image
from effnet_jax.data import Preprocessing, preprocess

SEED = tf.constant([3, 4], tf.int64)


def encode(array, image_format):
  return tf.constant(encode_image(array, image_format))


def box(box_fn, height, width):
  return tuple(int(v) for v in box_fn(tf.constant(height), tf.constant(width)))


@pytest.mark.parametrize('size', [224, 240, 260, 300, 380, 456, 528, 600])
@pytest.mark.parametrize('height, width', [(375, 500), (500, 375), (333, 333), (1024, 683)])
def test_center_crop_padding_32(size, height, width):
  side = int(size / (size + 32) * min(height, width))
  expected = ((height - side + 1) // 2, (width - side + 1) // 2, side, side)
  assert box(preprocess.center_box(size / (size + 32)), height, width) == expected


def test_eval_center_and_squash():
  image = np.zeros((40, 80, 1), np.uint8)
  image[:, 40:] = 255  # left half black, right half white
  center = Preprocessing(image_size=16, eval_image_size=16, crop_fraction=0.5, mean=(0, 0, 0),
                         std=(1, 1, 1))
  squash = Preprocessing(image_size=16, eval_image_size=16, crop_mode='squash', mean=(0, 0, 0),
                         std=(1, 1, 1))
  centered = preprocess.eval_image(tf.constant(image), center).numpy()
  squashed = preprocess.eval_image(tf.constant(image), squash).numpy()
  assert centered.shape == squashed.shape == (16, 16, 3)
  # centre crop: 20x20 around the middle column (x 30..50) -> both halves present
  assert centered[:, 0].max() == 0 and centered[:, -1].min() == 1
  # squash: the whole width; the black half fills the left half of the output
  np.testing.assert_array_equal(squashed[:, :7], 0)
  np.testing.assert_array_equal(squashed[:, 9:], 1)


def test_interpolations():
  image = random_image((10, 12, 3))
  bicubic = preprocess.resize(tf.constant(image), 20, 'bicubic').numpy()
  bilinear = preprocess.resize(tf.constant(image), 20, 'bilinear').numpy()
  assert bicubic.dtype == bilinear.dtype == np.uint8 and bicubic.shape == (20, 20, 3)
  assert np.abs(bicubic.astype(int) - bilinear).mean() > 1
  legacy = tf.compat.v1.image.resize_bicubic(image[None], [20, 20], half_pixel_centers=False)[0]
  np.testing.assert_array_equal(bicubic, np.clip(np.round(legacy), 0, 255))
  half_pixel = tf.image.resize(image, [20, 20], 'bilinear')
  np.testing.assert_array_equal(bilinear, np.clip(np.round(half_pixel), 0, 255))
  np.testing.assert_array_equal(preprocess.resize(tf.constant(image[:, :10]), 10, 'bicubic'),
                                image[:, :10])  # already the size: untouched


def test_inception_crop_falls_back_to_center():
  # No box of the whole area has aspect in [3/4, 4/3] in a 2:1 image -> the centre crop.
  prep = Preprocessing(image_size=8, eval_image_size=8, area_range=(1.0, 1.0))
  assert box(preprocess.inception_box(SEED, prep), 50, 100) == (4, 29, 43, 43)


def test_inception_crop_samples_within_ranges():
  prep = Preprocessing(image_size=8, eval_image_size=8)
  boxes = {box(preprocess.inception_box(tf.constant([s, 0], tf.int64), prep), 300, 400)
           for s in range(20)}
  assert len(boxes) > 10
  for y, x, h, w in boxes:
    assert 0 <= y and y + h <= 300 and 0 <= x and x + w <= 400
    assert 0.08 * 0.9 <= h * w / (300 * 400) <= 1.0


def test_jpeg_decode_and_crop_matches_decode_then_crop():
  encoded = encode(random_image((60, 80, 3)), 'JPEG')
  window = preprocess.center_box(0.5)
  cropped = preprocess.decode_crop(encoded, window).numpy()
  full = tf.io.decode_jpeg(encoded, channels=3)
  expected = preprocess.decode_crop(full, window).numpy()
  assert cropped.shape == (30, 30, 3)
  assert np.abs(cropped.astype(int) - expected).max() <= 2


@pytest.mark.parametrize('channels, image_format', [
    (1, 'PNG'), (3, 'PNG'), (4, 'PNG'), (1, 'JPEG'), (3, 'JPEG')])
def test_decoded_images_have_three_channels(channels, image_format):
  array = random_image((9, 7, channels))
  encoded = preprocess.to_rgb(preprocess.decode_crop(encode(array, image_format)))
  from_array = preprocess.to_rgb(preprocess.decode_crop(tf.constant(array)))
  assert encoded.shape == from_array.shape == (9, 7, 3)
  if image_format == 'PNG':
    np.testing.assert_array_equal(encoded, from_array)


def test_normalize():
  image = tf.fill([2, 2, 3], tf.constant(51, tf.uint8))
  out = preprocess.normalize(image, (0.1, 0.2, 0.3), (0.5, 0.25, 0.1)).numpy()
  np.testing.assert_allclose(out[0, 0], [(0.2 - 0.1) / 0.5, 0.0, (0.2 - 0.3) / 0.1], atol=1e-6)
  assert out.dtype == np.float32


@pytest.mark.parametrize('train_crop', ['inception', 'pad_crop', 'none'])
def test_train_image_is_deterministic_in_its_seed(train_crop):
  prep = Preprocessing(image_size=16, eval_image_size=16, train_crop=train_crop, pad_pixels=4)
  image = tf.constant(random_image((20, 30, 3)))
  views = [preprocess.train_image(image, tf.constant([s, 1], tf.int64), prep).numpy()
           for s in (0, 0, 1, 2, 3)]
  assert views[0].shape == (16, 16, 3) and views[0].dtype == np.float32
  np.testing.assert_array_equal(views[0], views[1])
  assert any(not np.array_equal(views[0], view) for view in views[2:])


def test_pad_crop_pads_with_zeros():
  prep = Preprocessing(image_size=8, eval_image_size=8, train_crop='pad_crop', pad_pixels=2,
                       flip=False, mean=(0, 0, 0), std=(1, 1, 1))
  image = tf.fill([8, 8, 1], tf.constant(255, tf.uint8))
  views = [preprocess.train_image(image, tf.constant([s, 0], tf.int64), prep).numpy()
           for s in range(8)]
  assert all(view.shape == (8, 8, 3) for view in views)
  assert min(float(view.min()) for view in views) == 0.0  # crops show the zero padding
  assert all(np.all(view[2:6, 2:6] == 1.0) for view in views)  # at most 2 padded rows/cols
  assert len({view.tobytes() for view in views}) > 4


def pillow_bytes(mode, size, image_format, **options):
  buffer = io.BytesIO()
  Image.new(mode, size).save(buffer, image_format, **options)
  return buffer.getvalue()


def top_down_bmp(width, height):
  """A BMP with a negative height in its header: rows stored top-down."""
  data = bytearray(pillow_bytes('RGB', (width, height), 'BMP'))
  struct.pack_into('<i', data, 22, -height)
  return bytes(data)


@pytest.mark.parametrize('mode, image_format, options', [
    ('RGB', 'JPEG', {}), ('L', 'JPEG', {}), ('RGB', 'PNG', {}), ('1', 'PNG', {}),
    ('P', 'GIF', {}), ('RGB', 'BMP', {}), ('RGB', 'WEBP', {}),  # WebP: a VP8 chunk,
    ('RGB', 'WEBP', {'lossless': True}), ('RGBA', 'WEBP', {})],  # VP8L; VP8X
    ids=['jpeg', 'grey_jpeg', 'png', '1bit_png', 'gif', 'bmp', 'webp', 'webp_vp8l', 'webp_vp8x'])
def test_image_shape_is_read_from_the_header(mode, image_format, options):
  encoded = tf.constant(pillow_bytes(mode, (37, 23), image_format, **options))
  assert list(preprocess.image_shape(encoded).numpy()) == [23, 37]
  assert tf.io.decode_image(encoded, expand_animations=False).shape[:2] == (23, 37)


def test_image_shape_of_other_data_is_zero():
  bmp = top_down_bmp(37, 23)
  assert list(preprocess.image_shape(tf.constant(bmp)).numpy()) == [23, 37]
  assert tf.io.decode_image(bmp).shape == (23, 37, 3)
  for data in (b'', b'\x89PNG', b'not an image', pillow_bytes('RGB', (37, 23), 'TIFF')):
    assert list(preprocess.image_shape(tf.constant(data)).numpy()) == [0, 0]


@pytest.mark.parametrize('image_format', ['TIFF', 'PPM', 'TGA'])
def test_formats_tensorflow_does_not_decode_are_decoded_by_pillow(image_format):
  """In a tf.data map as eagerly: the pixels, the pixel limit from Pillow's header read, and
  data neither decodes as an error (not a Python traceback)."""
  array = random_image((23, 37, 3))
  encoded = encode_image(array, image_format)
  np.testing.assert_array_equal(preprocess.decode_crop(tf.constant(encoded)), array)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='37x23 pixels, more than max_image_pixels=850'):
    preprocess.check_pixel_limit(tf.constant(encoded), 850)
  with pytest.raises(tf.errors.InvalidArgumentError, match=preprocess.NOT_AN_IMAGE):
    preprocess.decode_crop(tf.constant(b'not an image'))
  shapes = tf.data.Dataset.from_tensor_slices([encoded, b'not an image', encoded]).map(
      lambda image: tf.shape(preprocess.decode_crop(preprocess.check_pixel_limit(image, 851))))
  assert [list(s) for s in shapes.ignore_errors().as_numpy_iterator()] == [[23, 37, 3]] * 2


def test_check_pixel_limit_refuses_a_larger_image_before_decoding():
  encoded = encode(random_image((40, 30, 3)), 'PNG')  # 1,200 pixels
  assert preprocess.check_pixel_limit(encoded, 1200).numpy() == encoded.numpy()
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='30x40 pixels, more than max_image_pixels=1199'):
    preprocess.check_pixel_limit(encoded, 1199)
  decoded = tf.zeros([40, 30, 3], tf.uint8)  # already decoded: nothing to check
  assert preprocess.check_pixel_limit(decoded, 1) is decoded
  # in a tf.data map the failed check is an error like a corrupt file's: ignore_errors drops it
  small = encode(random_image((10, 20, 3)), 'PNG')
  images = tf.data.Dataset.from_tensor_slices([encoded, small]).map(
      lambda image: tf.shape(preprocess.decode_crop(preprocess.check_pixel_limit(image, 1000))))
  assert [list(shape) for shape in images.ignore_errors().as_numpy_iterator()] == [[10, 20, 3]]
