"""Fine-tuning: a fresh run starts from the weights of a pretrained directory or another run.

``config.init_from`` names either (``effnet_jax.pretrained``). The run's own config says
what is trained; the weights must be of the same architecture (blocks, widths, activation,
padding, BN epsilon); what a family lets differ it adapts first (``Family.adapt_variables``:
Swin's relative position bias tables are resized to the run's windows). The classifier is
re-initialised where its shape differs (another number of classes); any other missing,
unexpected or reshaped array is an error naming them all.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from effnet_jax.checkpoints import check_compatible
from effnet_jax.models.registry import ModelConfig, get_family

HEAD = 'classifier'


def architecture(config: ModelConfig) -> dict[str, Any]:
  """What the weights of ``config`` compute with (regularisation and metadata left out): the
  family's ``architecture`` hook, by default its resolved blocks and stem/head widths."""
  family = get_family(config.family)
  if family.architecture is not None:
    described = family.architecture(config)
  else:
    described = {'blocks': dataclasses.replace(config, drop_path_rate=0.0).resolved_arch(),
                 'stem_channels': config.resolved_stem_channels(),
                 'head_channels': config.resolved_head_channels()}
  return {'family': config.family, **described, 'activation': config.activation,
          'padding': config.padding, 'bn_eps': config.bn_eps}


def check_architecture(run: ModelConfig, weights: ModelConfig, path: str) -> None:
  """Raises ValueError naming what differs between the run's model and the weights'."""
  ours, theirs = architecture(run), architecture(weights)
  differs = [k for k in ours if ours[k] != theirs[k]]
  if differs:
    shown = ', '.join(k if k == 'blocks' else f'{k} {theirs[k]!r} (run: {ours[k]!r})'
                      for k in differs)
    raise ValueError(f'init_from {path}: the weights are a {weights.name} of another '
                     f'architecture than the run\'s {run.name}: {shown}. Set config.model and '
                     'config.model_overrides to the weights\' architecture.')


def _shapes(tree) -> list[tuple]:
  return [np.shape(x) for x in jax.tree_util.tree_leaves(tree)]


def merge_variables(pretrained: dict[str, Any], fresh: dict[str, Any], what: str
                    ) -> tuple[dict[str, Any], list[str]]:
  """``(variables, re-initialised names)``: ``pretrained`` in the dtypes of ``fresh``, with
  ``fresh``'s classifier where the pretrained one has another shape (or is absent)."""
  params = dict(pretrained['params'])
  reinitialised = []
  saved_head, fresh_head = params.pop(HEAD, None), fresh['params'].get(HEAD)
  if fresh_head is not None:
    if saved_head is not None and _shapes(saved_head) == _shapes(fresh_head):
      params[HEAD] = saved_head
    else:
      params[HEAD] = fresh_head
      reinitialised = sorted(f'params/{HEAD}/{name}' for name in fresh_head)
  merged = {'params': params, 'batch_stats': pretrained.get('batch_stats', {})}
  target = {'params': fresh['params'], 'batch_stats': fresh.get('batch_stats', {})}
  check_compatible(merged, target, what)
  merged = jax.tree_util.tree_map(lambda x, like: np.asarray(x, like.dtype), merged, target)
  return merged, reinitialised


def with_weights(state, variables: dict[str, Any], tx):
  """``state`` with ``variables`` as params and BN statistics (and their EMA copies) and a
  fresh optimizer state (jit-able)."""
  params, batch_stats = variables['params'], variables['batch_stats']
  copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)
  ema = state.ema_params is not None
  return state.replace(params=params, batch_stats=batch_stats, opt_state=tx.init(params),
                       ema_params=copy(params) if ema else None,
                       ema_batch_stats=copy(batch_stats) if ema else None)


def load_initial_variables(path: str, run: ModelConfig, fresh: dict[str, Any]
                           ) -> tuple[dict[str, Any], list[str], ModelConfig]:
  """``(variables, re-initialised names, the weights' ModelConfig)`` for a run of ``run``
  whose freshly initialised variables are ``fresh`` (host arrays)."""
  from effnet_jax.pretrained import load_pretrained, pretrained_config
  try:
    weights = pretrained_config(path)
  except FileNotFoundError as error:
    raise ValueError(f'init_from: {error}') from None
  check_architecture(run, weights, path)
  _, pretrained = load_pretrained(path)
  pretrained = jax.device_get(pretrained)
  adapt = get_family(run.family).adapt_variables
  if adapt is not None:  # e.g. Swin: bias tables of the weights' windows resized to the run's
    pretrained = adapt(pretrained, weights, run)
  variables, reinitialised = merge_variables(pretrained, fresh, f'init_from {path}')
  return variables, reinitialised, weights
