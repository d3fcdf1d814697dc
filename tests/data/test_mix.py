"""Mixup / CutMix on device (pure JAX)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effnet_jax.data.mix import mixup_cutmix

BATCH, SIZE, CLASSES = 8, 12, 5


def batch():
  """Image i is constant i + 1; its label is one-hot class i % CLASSES."""
  images = jnp.broadcast_to(jnp.arange(1.0, BATCH + 1)[:, None, None, None], (BATCH, SIZE, SIZE, 3))
  return images, jax.nn.one_hot(jnp.arange(BATCH) % CLASSES, CLASSES)


def own_weight(mixed_images):
  """Per pixel, w in ``w * own + (1 - w) * partner`` (partner: the batch reversed)."""
  own = jnp.arange(1.0, BATCH + 1)[:, None, None]
  partner = own[::-1]
  return (mixed_images[..., 0] - partner) / (own - partner)


def test_alpha_zero_is_identity():
  images, labels = batch()
  out_images, out_labels = mixup_cutmix(jax.random.key(0), images, labels, 0.0, 0.0)
  assert out_images is images and out_labels is labels


def test_mixup_keeps_at_least_half_of_the_own_image():
  images, labels = batch()
  mixed, soft = mixup_cutmix(jax.random.key(1), images, labels, 0.8, 0.0)
  weight = own_weight(mixed)
  lam = weight[:, 0, 0]
  np.testing.assert_allclose(weight, jnp.broadcast_to(lam[:, None, None], weight.shape), atol=1e-5)
  assert (lam >= 0.5 - 1e-6).all() and (lam <= 1.0 + 1e-6).all()
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(soft, lam[:, None] * labels + (1 - lam[:, None]) * labels[::-1],
                             atol=1e-5)


def test_cutmix_label_weight_is_the_pasted_fraction():
  images, labels = batch()
  mixed, soft = mixup_cutmix(jax.random.key(2), images, labels, 0.0, 1.0)
  pasted = (mixed[..., 0] != images[..., 0]).mean(axis=(1, 2))
  np.testing.assert_array_equal(jnp.isin(mixed, images), True)  # pixels are copied, not blended
  np.testing.assert_allclose(soft, (1 - pasted)[:, None] * labels + pasted[:, None] * labels[::-1],
                             atol=1e-6)
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
  assert 0 < float(pasted.mean()) < 1


def test_both_alphas_split_the_batch():
  images, labels = batch()
  mixed, soft = mixup_cutmix(jax.random.key(3), images, labels, 0.5, 0.5)
  half = BATCH // 2
  first, _ = mixup_cutmix(jax.random.split(jax.random.key(3))[0], images[:half], labels[:half],
                          0.5, 0.0)
  np.testing.assert_allclose(mixed[:half], first)
  values = np.unique(np.asarray(mixed[half:]))
  assert set(values) <= set(range(half + 1, BATCH + 1))  # cutmix among the second half only
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize('alphas', [(0.2, 0.0), (0.0, 0.2), (0.2, 0.2)])
def test_jit_with_static_alphas(alphas):
  images, labels = batch()
  mix = jax.jit(mixup_cutmix, static_argnums=(3, 4))
  jitted = mix(jax.random.key(4), images.astype(jnp.bfloat16), labels, *alphas)
  eager = mixup_cutmix(jax.random.key(4), images.astype(jnp.bfloat16), labels, *alphas)
  assert jitted[0].dtype == jnp.bfloat16 and jitted[1].shape == (BATCH, CLASSES)
  np.testing.assert_allclose(jitted[1], eager[1], atol=1e-6)
