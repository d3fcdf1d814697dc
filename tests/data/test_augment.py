"""The RandAugment / AutoAugment operations and policies."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from data_helpers import random_image
from effnet_jax.data import augment

SEED = tf.constant([7, 11], tf.int64)


def image(shape=(16, 20, 3)):
  return tf.constant(random_image(shape))


def constant(value, shape=(16, 20, 3)):
  return tf.fill(shape, tf.constant(value, tf.uint8))


@pytest.mark.parametrize('name', list(augment.OPS))
@pytest.mark.parametrize('level', [0.0, 5.0, 17.5])
def test_ops_keep_shape_and_dtype(name, level):
  out = augment.apply_op(name, image(), level, SEED)
  assert out.shape == (16, 20, 3) and out.dtype == tf.uint8


def test_sixteen_ops_and_25_sub_policies():
  assert len(augment.OPS) == 16 and len(augment.POLICY_V0) == 25
  assert all(len(sub) == 2 and all(op in augment.OPS for op, _, _ in sub)
             for sub in augment.POLICY_V0)


def test_pixel_ops():
  x = image()
  np.testing.assert_array_equal(augment.invert(augment.invert(x)), x)
  np.testing.assert_array_equal(augment.solarize(x, 256), x)
  np.testing.assert_array_equal(augment.solarize(x, 0), augment.invert(x))
  np.testing.assert_array_equal(augment.posterize(x, 8), x)
  np.testing.assert_array_equal(augment.posterize(x, 4), x.numpy() & 0xF0)
  np.testing.assert_array_equal(augment.posterize(x, 0), np.zeros_like(x))
  added = augment.solarize_add(x, 50).numpy().astype(int)
  low = x.numpy() < 128
  np.testing.assert_array_equal(added[low], np.minimum(x.numpy()[low].astype(int) + 50, 255))
  np.testing.assert_array_equal(added[~low], x.numpy()[~low])


def test_auto_contrast_and_equalize():
  flat = constant(77)
  np.testing.assert_array_equal(augment.auto_contrast(flat), flat)
  np.testing.assert_array_equal(augment.equalize(flat), flat)
  narrow = tf.constant(100 + random_image((16, 20, 3)) // 6)
  stretched = augment.auto_contrast(narrow).numpy()
  assert (stretched.min(axis=(0, 1)) == 0).all() and (stretched.max(axis=(0, 1)) == 255).all()
  pil = np.asarray(ImageOps.equalize(Image.fromarray(narrow.numpy())))
  np.testing.assert_array_equal(augment.equalize(narrow), pil)


def test_enhance_ops():
  x = image()
  for op in (augment.color, augment.contrast, augment.brightness, augment.sharpness):
    np.testing.assert_array_equal(op(x, 1.0), x)
  grey = augment.color(x, 0.0).numpy()
  assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
  np.testing.assert_array_equal(augment.brightness(x, 0.0), np.zeros_like(x))
  assert len(np.unique(augment.contrast(x, 0.0))) == 1
  np.testing.assert_array_equal(augment.sharpness(constant(90), 1.9), constant(90))


def test_geometric_ops():
  x = image((16, 16, 3))
  for op in (augment.rotate, augment.shear_x, augment.shear_y, augment.translate_x,
             augment.translate_y):
    np.testing.assert_array_equal(op(x, 0.0), x)
  quarter = augment.rotate(x, 90.0).numpy()
  assert any(np.array_equal(quarter, np.rot90(x.numpy(), k)) for k in (1, 3))
  shifted = augment.translate_x(x, 3.0).numpy()
  np.testing.assert_array_equal(shifted[:, :13], x.numpy()[:, 3:])
  np.testing.assert_array_equal(shifted[:, 13:], augment.FILL)


def test_cutout():
  x = image()
  np.testing.assert_array_equal(augment.cutout(x, 0, SEED), x)
  out = augment.cutout(constant(0), 3, SEED).numpy()
  filled = out[..., 0] == augment.FILL
  rows, cols = np.nonzero(filled)
  assert 0 < filled.sum() <= 36 and np.ptp(rows) < 6 and np.ptp(cols) < 6
  assert filled.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one rectangle


def test_levels_extrapolate_above_10():
  x = image()
  np.testing.assert_array_equal(augment.apply_op('Brightness', x, 20.0, SEED),
                                augment.brightness(x, 3.7))  # 1.8 * 20 / 10 + 0.1
  np.testing.assert_array_equal(augment.apply_op('Posterize', x, 15.0, SEED),
                                augment.posterize(x, 6))
  np.testing.assert_array_equal(augment.apply_op('Posterize', x, 30.0, SEED), x)  # clamped
  rotated = augment.apply_op('Rotate', x, 20.0, SEED)
  assert any(np.array_equal(rotated, augment.rotate(x, d)) for d in (60.0, -60.0))
  cut = augment.apply_op('Cutout', constant(0, (300, 300, 3)), 15.0, SEED).numpy()
  assert (cut[..., 0] == augment.FILL).sum() > 80 * 80  # half-side 40 * 1.5 = 60 (clipped)


@pytest.mark.parametrize('policy', [
    lambda x, seed: augment.randaugment(x, seed, num_layers=2, magnitude=9.0),
    lambda x, seed: augment.autoaugment(x, seed)], ids=['randaugment', 'autoaugment'])
def test_policies_are_deterministic_per_seed(policy):
  x = image()
  outputs = [policy(x, tf.constant([s, 0], tf.int64)).numpy() for s in (0, 0, 1, 2, 3, 4, 5)]
  np.testing.assert_array_equal(outputs[0], outputs[1])
  assert len({out.tobytes() for out in outputs}) >= 4
  assert all(out.shape == (16, 20, 3) and out.dtype == np.uint8 for out in outputs)


def test_sharpness_smooths_like_a_3x3_kernel_with_centre_weight_5():
  image = np.random.default_rng(0).integers(0, 256, (7, 9, 3), np.uint8)
  x = image.astype(np.float64)
  kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0
  expected = x.copy()
  for i in range(1, 6):
    for j in range(1, 8):
      expected[i, j] = np.einsum('ijc,ij->c', x[i - 1:i + 2, j - 1:j + 2], kernel)
  np.testing.assert_array_equal(augment.sharpness(tf.constant(image), 0.0),
                                np.round(expected).astype(np.uint8))


def test_auto_contrast_and_equalize_per_channel():
  rng = np.random.default_rng(1)
  x = np.stack([rng.integers(40, 90, (12, 10)), rng.integers(0, 256, (12, 10)),
                np.full((12, 10), 33)], axis=-1).astype(np.uint8)  # narrow, full, constant
  pil = np.asarray(ImageOps.equalize(Image.fromarray(x)))
  np.testing.assert_array_equal(augment.equalize(tf.constant(x)), pil)
  low, high = x.min(axis=(0, 1)), x.max(axis=(0, 1))
  scale = np.float32(255.0) / np.maximum(high - low, 1).astype(np.float32)
  expected = np.where(high > low, (x.astype(np.float32) - low) * scale, x)
  np.testing.assert_array_equal(augment.auto_contrast(tf.constant(x)),
                                np.round(np.clip(expected, 0, 255)).astype(np.uint8))


@pytest.mark.parametrize('threshold', [-5, 0, 1, 128, 255, 256, 400])
@pytest.mark.parametrize('addition', [-300, -40, 0, 50, 255, 330])
def test_solarize_ops_match_integer_arithmetic(threshold, addition):
  x = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
  wide = x.astype(int)
  np.testing.assert_array_equal(augment.solarize(tf.constant(x), threshold),
                                np.where(wide < threshold, wide, 255 - wide))
  np.testing.assert_array_equal(augment.solarize_add(tf.constant(x), addition, threshold),
                                np.where(wide < threshold, np.clip(wide + addition, 0, 255), wide))
