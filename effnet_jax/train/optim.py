"""Learning-rate schedules, weight-decay masks and optimizers of the official recipes.

Exact update equations and the recipe numbers are in docs/optim.md.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ('exponential', 'cosine', 'constant')
OPTIMIZERS = ('rmsprop_tf', 'sgd', 'adamw', 'lars')
WEIGHT_DECAY_MODES = ('coupled', 'decoupled')
WEIGHT_DECAY_EXCLUDES = ('bn', 'bn_and_bias', 'norm_bias_and_tables', 'none')


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f'unknown {kind} {value!r}; expected one of {list(choices)}')


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """The ``optimizer`` config section (defaults: the official EfficientNet recipe)."""
  name: str = 'rmsprop_tf'  # rmsprop_tf | sgd | adamw | lars
  base_learning_rate: float = 0.016  # per lr_batch_base images
  lr_batch_base: int = 256
  momentum: float = 0.9
  nesterov: bool = False
  rms_decay: float = 0.9
  eps: float = 1e-3
  b1: float = 0.9
  b2: float = 0.999
  weight_decay: float = 1e-5
  weight_decay_mode: str = 'coupled'  # coupled (through the loss, official) | decoupled
  weight_decay_exclude: str = 'bn'  # bn (V1) | bn_and_bias (V2, timm) | norm_bias_and_tables | none
  lars_trust_coefficient: float = 0.001
  grad_clip_norm: float = 0.0  # 0: no clipping


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
  """The ``schedule`` config section (defaults: the official EfficientNet recipe)."""
  name: str = 'exponential'  # exponential (staircase) | cosine | constant
  warmup_epochs: float = 5.0
  decay_epochs: float = 2.4
  decay_rate: float = 0.97
  min_learning_rate: float = 0.0
  warmup_init: float = 0.0


def learning_rate_schedule(schedule: str, base_learning_rate: float, global_batch_size: int,
                           steps_per_epoch: float, total_steps: int, warmup_epochs: float = 5.0,
                           decay_epochs: float = 2.4, decay_rate: float = 0.97,
                           min_learning_rate: float = 0.0, warmup_init: float = 0.0,
                           lr_batch_base: int = 256) -> optax.Schedule:
  """Learning rate at an optimizer step, as the official TF code computes it.

  ``peak = base_learning_rate * global_batch_size / lr_batch_base``. For ``step < warmup_steps =
  int(warmup_epochs * steps_per_epoch)`` the rate rises linearly from ``warmup_init`` to ``peak``
  and ignores the decay; afterwards the decay, counted from step 0, takes over:

  * ``exponential``: ``peak * decay_rate ** floor(step / (decay_epochs * steps_per_epoch))``
    (staircase), floored at ``min_learning_rate``;
  * ``cosine``: ``min + (peak - min) * (1 + cos(pi * step / total_steps)) / 2``;
  * ``constant``: ``peak``.

  Computed in float32 like TF; accepts Python or traced integer steps.
  """
  _check_choice('schedule', schedule, SCHEDULES)
  peak = base_learning_rate * global_batch_size / lr_batch_base
  warmup_steps = int(warmup_epochs * steps_per_epoch)  # TF truncates
  decay_steps = decay_epochs * steps_per_epoch

  def decayed(step: jax.Array) -> jax.Array:
    if schedule == 'exponential':
      return jnp.maximum(peak * decay_rate ** jnp.floor(step / decay_steps), min_learning_rate)
    if schedule == 'cosine':
      cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(step / total_steps, 1.0)))
      return min_learning_rate + (peak - min_learning_rate) * cosine
    return jnp.full_like(step, peak)

  def learning_rate(step) -> jax.Array:
    step = jnp.asarray(step, jnp.float32)
    warmup = warmup_init + (peak - warmup_init) * step / max(warmup_steps, 1)
    return jnp.where(step < warmup_steps, warmup, decayed(step)).astype(jnp.float32)

  return learning_rate


def weight_decay_mask(params, exclude: str):
  """Pytree of bools with the structure of ``params``: True where weight decay applies.

  BN parameters are the leaves ``scale`` / ``bias`` whose parent module is named ``bn``.
  ``exclude``: ``bn`` (official V1: decay all but BN), ``bn_and_bias`` (official V2 and timm:
  no decay on any ``bias`` nor on BN ``scale``), ``norm_bias_and_tables`` (official Swin: no
  decay on any leaf of at most one dimension — biases, BN and LayerNorm scales — nor on position
  tables, leaves named ``*_table``), ``none`` (decay everything). ``params`` may hold arrays or
  abstract shapes.
  """
  _check_choice('weight_decay_exclude', exclude, WEIGHT_DECAY_EXCLUDES)

  def decayed(path, leaf) -> bool:
    names = jax.tree_util.keystr(path, simple=True, separator='/').split('/')
    is_bn = names[-2:-1] == ['bn'] and names[-1] in ('scale', 'bias')
    if exclude == 'norm_bias_and_tables':
      return not (len(leaf.shape) <= 1 or names[-1].endswith('_table'))
    if exclude == 'bn':
      return not is_bn
    if exclude == 'bn_and_bias':
      return not (is_bn or names[-1] == 'bias')
    return True

  return jax.tree_util.tree_map_with_path(decayed, params)


def _decoupled_weight_decay(learning_rate: optax.ScalarOrSchedule, weight_decay: float,
                            mask: Any) -> optax.GradientTransformation:
  """``updates -= learning_rate(count) * weight_decay * params`` on the masked leaves."""
  schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

  def init_fn(params):
    del params
    return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params):
    rate = weight_decay * schedule(state.count)
    updates = jax.tree.map(lambda u, p: u - (rate * p).astype(u.dtype), updates, params)
    return updates, optax.ScaleByScheduleState(count=state.count + 1)

  return optax.masked(optax.GradientTransformation(init_fn, update_fn), mask)


def create_optimizer(name: str, learning_rate: optax.ScalarOrSchedule, *, momentum: float = 0.9,
                     nesterov: bool = False, rms_decay: float = 0.9, eps: float = 1e-3,
                     b1: float = 0.9, b2: float = 0.999, weight_decay: float = 0.0,
                     weight_decay_mode: str = 'coupled', weight_decay_exclude: str = 'bn',
                     lars_trust_coefficient: float = 0.001, grad_clip_norm: float = 0.0,
                     params=None) -> optax.GradientTransformation:
  """One optax transformation: clip, coupled decay, update rule, decoupled decay (in that order).

  Update rules (docs/optim.md has the equations):
    ``rmsprop_tf``: TF1 ``RMSPropOptimizer`` (mean square starts at 1, ``eps`` inside the square
      root, learning rate inside the momentum buffer); ``rms_decay``, ``eps``, ``momentum``.
    ``sgd``: heavy-ball momentum (PyTorch convention, learning rate outside the buffer),
      optionally Nesterov.
    ``adamw``: Adam (``b1``, ``b2``, ``eps`` outside the square root); with
      ``weight_decay_mode='decoupled'`` it equals ``optax.adamw(..., weight_decay, mask)``.
    ``lars``: optax LARS (trust ratio ``lars_trust_coefficient * |w| / |g|``, epsilon 0,
      learning rate inside the momentum buffer); the leaves excluded from weight decay are also
      excluded from the trust ratio (conventionally ``weight_decay_exclude='bn_and_bias'``).

  Weight decay on the leaves selected by ``weight_decay_mask(params, weight_decay_exclude)``:
    ``coupled``: ``g += weight_decay * w`` before the update rule, i.e. the gradient of the loss
      term ``weight_decay * sum(|w|^2) / 2`` (TF recipes; PyTorch SGD's ``weight_decay``).
    ``decoupled``: ``update -= learning_rate(step) * weight_decay * w`` after the update rule.

  ``grad_clip_norm > 0`` clips the raw gradient by its global norm first. ``params`` (arrays or
  abstract shapes) fixes the mask once; without it the mask is computed from the tree at hand.
  """
  _check_choice('optimizer', name, OPTIMIZERS)
  _check_choice('weight_decay_mode', weight_decay_mode, WEIGHT_DECAY_MODES)
  _check_choice('weight_decay_exclude', weight_decay_exclude, WEIGHT_DECAY_EXCLUDES)
  mask: Any
  if params is None:
    mask = functools.partial(weight_decay_mask, exclude=weight_decay_exclude)
  else:
    mask = weight_decay_mask(params, weight_decay_exclude)

  update_rules: dict[str, Callable[[], optax.GradientTransformation]] = {
      'rmsprop_tf': lambda: optax.chain(
          optax.scale_by_rms(decay=rms_decay, eps=eps, initial_scale=1.0, eps_in_sqrt=True),
          optax.scale_by_learning_rate(learning_rate),
          optax.trace(decay=momentum, nesterov=nesterov)),
      'sgd': lambda: optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
      'adamw': lambda: optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
      'lars': lambda: optax.lars(learning_rate, weight_decay=0.0,
                                 trust_coefficient=lars_trust_coefficient,
                                 trust_ratio_mask=mask, momentum=momentum, nesterov=nesterov),
  }
  transforms = []
  if grad_clip_norm > 0:
    transforms.append(optax.clip_by_global_norm(grad_clip_norm))
  if weight_decay and weight_decay_mode == 'coupled':
    transforms.append(optax.add_decayed_weights(weight_decay, mask=mask))
  transforms.append(update_rules[name]())
  if weight_decay and weight_decay_mode == 'decoupled':
    transforms.append(_decoupled_weight_decay(learning_rate, weight_decay, mask))
  return optax.chain(*transforms)
