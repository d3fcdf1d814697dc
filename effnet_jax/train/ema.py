"""Exponential moving average of the weights (TF ``ExponentialMovingAverage`` semantics)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def ema_decay(step, decay: float, warmup: bool = True) -> jax.Array:
  """EMA decay at ``step``: ``min(decay, (1 + step) / (10 + step))`` with warm-up, else ``decay``.

  TF's ``num_updates=global_step``: the official trainers apply the average after the optimizer
  has incremented the global step, so ``step`` is the number of optimizer updates done, the
  current one included (1 at the first update). Float32; accepts traced integer steps.
  """
  if not warmup:
    return jnp.asarray(decay, jnp.float32)
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema_tree, new_tree, decay):
  """``decay * ema + (1 - decay) * new`` leaf-wise, keeping the dtypes of ``ema_tree``.

  Computed as TF does, ``ema - (1 - decay) * (ema - new)``.
  """
  return jax.tree.map(lambda ema, new: (ema - (1.0 - decay) * (ema - new)).astype(ema.dtype),
                      ema_tree, new_tree)
