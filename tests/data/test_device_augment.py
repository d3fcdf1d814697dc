"""RandAugment on the device: every op equals the host (TF) op, one op per image and layer, the
host pipeline's uint8 output, the config check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from data_helpers import random_image
from effnet_jax.data import Preprocessing, augment, device_augment, pipeline
from effnet_jax.data.shards import in_memory_shard

# (name, host op, device op): the arguments cover both signs, clamping and extrapolated levels
CASES = [
    ('auto_contrast', augment.auto_contrast, device_augment.auto_contrast),
    ('equalize', augment.equalize, device_augment.equalize),
    ('invert', augment.invert, device_augment.invert),
    *[(f'posterize_{b}', lambda x, b=b: augment.posterize(x, b),
       lambda x, b=b: device_augment.posterize(x, b)) for b in (0, 3, 8)],
    *[(f'solarize_{t}', lambda x, t=t: augment.solarize(x, t),
       lambda x, t=t: device_augment.solarize(x, t)) for t in (0, 128, 300)],
    *[(f'solarize_add_{a}', lambda x, a=a: augment.solarize_add(x, a),
       lambda x, a=a: device_augment.solarize_add(x, a)) for a in (-40, 99)],
    *[(f'{op}_{f}', lambda x, op=op, f=f: getattr(augment, op)(x, f),
       lambda x, op=op, f=f: getattr(device_augment, op)(x, f))
      for op in ('color', 'contrast', 'brightness', 'sharpness') for f in (0.1, 1.72, 2.5)],
    *[(f'rotate_{d}', lambda x, d=d: augment.rotate(x, d),
       lambda x, d=d: device_augment.rotate(x, d)) for d in (-27.0, 30.0)],
    *[(f'{op}_{v}', lambda x, op=op, v=v: getattr(augment, op)(x, v),
       lambda x, op=op, v=v: getattr(device_augment, op)(x, v))
      for op, values in (('shear_x', (-0.27, 0.3)), ('shear_y', (0.27,)),
                         ('translate_x', (-9.0, 13.5)), ('translate_y', (11.0,)))
      for v in values],
]


def test_every_op_equals_the_host_op():
  image = random_image((37, 45, 3))
  image[:6] = 7  # a flat band: equalize's and auto-contrast's degenerate branches
  image[-3:, :, 1] = 200
  device = jax.jit(lambda x: {name: op(x) for name, _, op in CASES})(jnp.asarray(image))
  for name, host_op, _ in CASES:
    host = host_op(tf.constant(image)).numpy()
    np.testing.assert_array_equal(np.asarray(device[name]), host, err_msg=name)


def test_cutout_fills_the_clipped_square():
  image = random_image((20, 24, 3))
  out = np.asarray(device_augment.cutout_at(jnp.asarray(image), 4, 2, 21))
  inside = np.zeros((20, 24), bool)
  inside[0:6, 17:24] = True
  assert np.all(out[inside] == augment.FILL)
  np.testing.assert_array_equal(out[~inside], image[~inside])


def candidates(image, magnitude):
  """What one RandAugment layer can make of ``image``: every op, both signs."""
  f = magnitude / augment.MAX_LEVEL
  e = f * 1.8 + 0.1
  d = device_augment
  outs = [d.auto_contrast(image), d.equalize(image), d.invert(image),
          d.posterize(image, int(4 * f)), d.solarize(image, int(256 * f)), d.color(image, e),
          d.contrast(image, e), d.brightness(image, e), d.sharpness(image, e),
          d.solarize_add(image, int(110 * f))]
  for sign in (-1, 1):
    outs += [d.rotate(image, sign * 30 * f), d.shear_x(image, sign * 0.3 * f),
             d.shear_y(image, sign * 0.3 * f), d.translate_x(image, sign * 100 * f),
             d.translate_y(image, sign * 100 * f)]
  return jnp.stack(outs)


def test_one_op_per_image_drawn_per_image():
  magnitude = 7.0
  images = random_image((32, 16, 18, 3))
  key = jax.random.key(3)
  out = np.asarray(jax.jit(lambda k, x: device_augment.randaugment(k, x, 1, magnitude))(
      key, jnp.asarray(images)))
  assert out.shape == images.shape and out.dtype == np.uint8
  every = np.asarray(jax.jit(jax.vmap(lambda x: candidates(x, magnitude)))(jnp.asarray(images)))
  chosen = set()
  for image, result, options in zip(images, out, every):
    matches = [i for i, c in enumerate(options) if np.array_equal(c, result)]
    if not matches:  # cutout: a square of FILL, the rest untouched
      changed = result != image
      assert np.all(result[changed] == augment.FILL), 'not one of the 16 ops'
      matches = ['cutout']
    chosen.add(matches[0])
  assert len(chosen) >= 8, f'32 images drew only {len(chosen)} different ops'
  again = jax.jit(lambda k, x: device_augment.randaugment(k, x, 1, magnitude))(
      key, jnp.asarray(images))
  np.testing.assert_array_equal(out, np.asarray(again))  # a function of the key
  two = jax.jit(lambda k, x: device_augment.randaugment(k, x, 2, magnitude))(
      key, jnp.asarray(images))
  assert not np.array_equal(out, np.asarray(two))
  with pytest.raises(TypeError, match='uint8'):
    device_augment.randaugment(key, jnp.zeros((1, 4, 4, 3)), 1, magnitude)


def test_host_pipeline_sends_uint8_before_randaugment():
  """augment_on_device: the host batch is the uint8 crop; normalized on the device it is
  exactly the host-normalized batch of a pipeline without RandAugment."""
  images = random_image((8, 14, 12, 3))
  shard = in_memory_shard(images, np.zeros(8))

  def first_batch(**fields):
    prep = Preprocessing(image_size=10, eval_image_size=10, **fields)
    dataset = pipeline.train_dataset(shard, prep, 4, pipeline.process_key(0, 0), 0, 1)
    return next(dataset.as_numpy_iterator())['images']
  sent = first_batch(augment='randaugment', augment_on_device=True)
  reference = first_batch(augment='none')
  assert sent.dtype == np.uint8 and reference.dtype == np.float32
  prep = Preprocessing(image_size=10, eval_image_size=10)
  np.testing.assert_allclose(
      np.asarray(device_augment.normalize(jnp.asarray(sent), prep.mean, prep.std)),
      reference, rtol=0, atol=1e-6)


def test_autoaugment_on_device_is_an_error():
  with pytest.raises(ValueError, match='RandAugment only'):
    Preprocessing(image_size=8, eval_image_size=8, augment='autoaugment', augment_on_device=True)


def test_loop_and_vmap_give_the_same_images():
  """The CPU's loop (only the chosen op runs) and the accelerators' vmap (every op, then a
  select) are one function of the key; 'auto' on this backend is one of them."""
  images = jnp.asarray(random_image((24, 12, 10, 3)))
  key = jax.random.key(11)
  out = {impl: np.asarray(jax.jit(
      lambda k, x, impl=impl: device_augment.randaugment(k, x, 2, 9.0, impl))(key, images))
      for impl in ('auto',) + device_augment.IMPLS}
  np.testing.assert_array_equal(out['loop'], out['vmap'])
  np.testing.assert_array_equal(out['auto'], out['vmap'])
  assert not np.array_equal(out['loop'], np.asarray(images))
  with pytest.raises(ValueError, match='impl'):
    device_augment.randaugment(key, images, 2, 9.0, 'scan')
