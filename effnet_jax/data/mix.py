"""Mixup and CutMix of a batch, in JAX (on device, inside the train step).

EfficientNetV2 semantics (google/automl; docs/reference.md, 'Preprocessing'): the partner of
example i is example B-1-i (the batch reversed). Mixup: per-example ``lam ~ Beta(a, a)`` raised to
``max(lam, 1 - lam)``, so an image keeps at least half its own weight. CutMix: per example
``a ~ Beta(a, a)``, a box of ``sqrt(1 - a) * (H, W)`` centred at a uniform pixel and clipped to the
image is pasted from the partner; the label weight is the pasted fraction of the pixels. With both
alphas > 0 the first half of the batch is mixed up and the second half cut-mixed, each half with
its own reversal as partner (as automl's ``mixing`` does). Alpha 0 turns a method off.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def mixup(rng: jax.Array, images: jax.Array, labels: jax.Array, alpha: float
          ) -> tuple[jax.Array, jax.Array]:
  lam = jax.random.beta(rng, alpha, alpha, (images.shape[0],))
  lam = jnp.maximum(lam, 1.0 - lam)
  image_lam = lam.astype(images.dtype)[:, None, None, None]
  label_lam = lam.astype(labels.dtype)[:, None]
  return (images * image_lam + images[::-1] * (1 - image_lam),
          labels * label_lam + labels[::-1] * (1 - label_lam))


def _span(key: jax.Array, size: int, fraction: jax.Array) -> jax.Array:
  """Per example, the pixels [size] inside a span of ``fraction * size`` centred at a uniform
  pixel, clipped to [0, size)."""
  length = (fraction * size).astype(jnp.int32)
  center = jax.random.randint(key, fraction.shape, 0, size)
  start = center - length // 2
  pixels = jnp.arange(size)
  return (pixels >= start[:, None]) & (pixels < (start + length)[:, None])


def cutmix(rng: jax.Array, images: jax.Array, labels: jax.Array, alpha: float
           ) -> tuple[jax.Array, jax.Array]:
  beta_key, row_key, col_key = jax.random.split(rng, 3)
  side = jnp.sqrt(1.0 - jax.random.beta(beta_key, alpha, alpha, (images.shape[0],)))
  box = (_span(row_key, images.shape[1], side)[:, :, None]
         & _span(col_key, images.shape[2], side)[:, None, :])  # [B, H, W]
  pasted = jnp.mean(box, axis=(1, 2)).astype(labels.dtype)[:, None]
  return (jnp.where(box[..., None], images[::-1], images),
          labels * (1 - pasted) + labels[::-1] * pasted)


def mixup_cutmix(rng: jax.Array, images: jax.Array, labels: jax.Array, mixup_alpha: float,
                 cutmix_alpha: float) -> tuple[jax.Array, jax.Array]:
  """images [B, H, W, C], labels [B, num_classes] (one-hot or smoothed) -> mixed images and soft
  labels. The alphas are static (Python floats)."""
  if mixup_alpha > 0 and cutmix_alpha > 0:
    half = images.shape[0] // 2
    mixup_key, cutmix_key = jax.random.split(rng)
    mixed = mixup(mixup_key, images[:half], labels[:half], mixup_alpha)
    cut = cutmix(cutmix_key, images[half:], labels[half:], cutmix_alpha)
    return (jnp.concatenate([mixed[0], cut[0]]), jnp.concatenate([mixed[1], cut[1]]))
  if mixup_alpha > 0:
    return mixup(rng, images, labels, mixup_alpha)
  if cutmix_alpha > 0:
    return cutmix(rng, images, labels, cutmix_alpha)
  return images, labels
