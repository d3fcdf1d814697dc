"""Shape-level model introspection: parameter counts, MACs, per-stage feature maps."""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from effnet_jax.models.layers import DepthwiseConv, PointwiseConv, TapsConv


def abstract_variables(model: nn.Module, image_size: int, batch_size: int = 1):
  """Variable shapes of ``model`` at ``image_size`` without allocating or computing anything."""
  images = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)


def count_params(params) -> int:
  """Number of scalars in a parameter tree (arrays or ShapeDtypeStructs)."""
  return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(params))


def profile(model: nn.Module, image_size: int):
  """``(abstract variables, MACs of one image)`` from a single abstract trace of ``model.init``.

  MACs count every conv and dense layer (SE included; BN, activations, pooling excluded), the
  convention of the papers' FLOPs columns: one multiply-add per kernel element per output
  position (conv kernel [kh, kw, cin/groups, cout], dense [cin, cout]). A module that multiplies
  activations by activations (attention: q·kᵀ, weights·v) declares those multiply-adds per image
  with a ``matmul_macs(*args, **kwargs)`` method taking its call's arguments; they are added.
  """
  macs = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and isinstance(
        module, (nn.Conv, nn.Dense, DepthwiseConv, PointwiseConv, TapsConv)):
      kernel = module.variables['params']['kernel']
      positions = math.prod(out.shape[1:-1])
      macs.append(positions * math.prod(kernel.shape))
    elif context.method_name == '__call__' and hasattr(module, 'matmul_macs'):
      macs.append(module.matmul_macs(*args, **kwargs))
    return out

  with nn.intercept_methods(record):
    variables = abstract_variables(model, image_size)
  return variables, sum(macs)


def count_macs(model: nn.Module, image_size: int) -> int:
  """Multiply-accumulates of one image's forward pass (see :func:`profile`)."""
  return profile(model, image_size)[1]


def extract_features(model: nn.Module, variables, images: jax.Array) -> dict[str, jax.Array]:
  """Eval-mode feature maps (``stem``, ``stage1`` … ``stageN``, ``head``) of ``images``."""
  return model.apply(variables, images, train=False, method='forward_features')


def feature_shapes(model: nn.Module, image_size: int, batch_size: int = 1):
  """Shapes of :func:`extract_features` outputs, computed abstractly."""
  variables = abstract_variables(model, image_size, batch_size)
  images = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(lambda v, x: extract_features(model, v, x), variables, images)


# A CPU forward pass over more pixels than this (batch x height x width) runs in chunks of the
# batch, one after the other: the activations of a chunk stay in the caches instead of streaming
# through memory between layers. Measured on a 2-core Zen 4 (docs/performance.md): B0 at 224 px,
# batch 32 in chunks of 8, 8-15 % faster; 128 px batch 32 in chunks of 16, 10 %; 64 px batch
# 128 in chunks of 64, 5 %; 32 px batch 128 whole (chunking it was 15-60 % slower).
CPU_CHUNK_PIXELS = 8 * 224 * 224


def forward_chunk(batch: int, height: int, width: int, platform: str) -> int:
  """Images per chunk of an inference forward pass on ``platform``: on a CPU, at most
  :data:`CPU_CHUNK_PIXELS` worth, spread evenly over the fewest chunks; elsewhere (GPU, TPU:
  no caches to fit) the whole batch."""
  if platform != 'cpu' or batch * height * width <= CPU_CHUNK_PIXELS:
    return batch
  chunks = -(-batch // max(1, CPU_CHUNK_PIXELS // (height * width)))
  return -(-batch // chunks)


def map_chunks(fn, chunk: int, images: jax.Array):
  """``fn(images)`` computed ``chunk`` images at a time (``lax.map``; the batch zero-padded to
  a multiple of ``chunk``, the padding cut from the outputs). ``fn`` must treat images
  independently (eval-mode BatchNorm): then the result equals ``fn(images)``."""
  batch = images.shape[0]
  if chunk >= batch:
    return fn(images)
  count = -(-batch // chunk)
  padded = jnp.pad(images, [(0, count * chunk - batch)] + [(0, 0)] * (images.ndim - 1))
  out = jax.lax.map(fn, padded.reshape((count, chunk) + images.shape[1:]))
  return jax.tree.map(lambda o: o.reshape((count * chunk,) + o.shape[2:])[:batch], out)


def apply_in_chunks(model: nn.Module, variables, images: jax.Array, platform: str | None = None):
  """Eval-mode ``model.apply(variables, images)`` in :func:`forward_chunk`-sized chunks for
  ``platform`` (default: the default backend's)."""
  chunk = forward_chunk(images.shape[0], images.shape[1], images.shape[2],
                        platform or jax.default_backend())
  return map_chunks(lambda x: model.apply(variables, x, train=False), chunk, images)
