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
