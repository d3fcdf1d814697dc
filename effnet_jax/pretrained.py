"""Weights with the model they belong to: pretrained directories (converted from timm, Keras, TF
or lukemelas, or exported) and training workdirs.

``load_pretrained(path)`` rebuilds exactly the model the weights belong to (padding, BN epsilon,
activation, number of classes) with no other input, from either

* a pretrained directory (``model.json`` + ``variables/``, written by :func:`save_pretrained`), or
* a training workdir (``python -m effnet_jax.main --workdir W``): its newest checkpoint that
  restores, EMA weights when the run kept them;
* released weights by name: a pretrained tag (``tf_efficientnet_b0.ns_jft_in1k``) or
  ``hf-hub:ORG/REPO``, converted and cached on first use by :mod:`effnet_jax.hub`.

``create_model(name, pretrained=True)`` is timm's one-line path: the model and its released
weights, with a new classifier for another ``num_classes``, or as a backbone.

The files themselves are read and written by :mod:`effnet_jax.checkpoints`, which owns both
formats; this module adds what needs the model registry: the model of the weights, and the check
that the weights are that model's.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from effnet_jax import checkpoints, hub
from effnet_jax.models import registry
from effnet_jax.models.registry import (ModelConfig, build_model, get_model_config,
                                        renamed_fields)


def save_pretrained(directory: str, model: str, variables: dict[str, Any],
                    overrides: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                    class_names: list[str] | None = None) -> str:
  """Writes ``variables`` ({'params', 'batch_stats'}) of registered ``model`` with ``overrides``
  to ``directory``, checked against the model's own shapes first; returns its absolute path.

  Atomic (:func:`effnet_jax.checkpoints.write_pretrained`): a reader never sees new variables
  beside an old model.json, and an interrupted write leaves the previous directory as it was. An
  existing pretrained directory (or an empty one) there is replaced; any other existing
  directory is an error (its files are not ours to delete)."""
  overrides = dict(overrides or {})
  config = get_model_config(model, **overrides)
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  _check_variables(variables, config, f'weights for {model}')
  if class_names is not None and len(class_names) != config.num_classes:
    raise ValueError(f'{len(class_names)} class names for {config.num_classes} classes')
  meta = checkpoints.pretrained_meta(model, overrides, source, class_names)
  return checkpoints.write_pretrained(directory, meta, variables)


def _check_variables(variables: dict[str, Any], config: ModelConfig, what: str) -> dict:
  """``variables`` as ``config``'s model takes them: CheckpointMismatch naming every array it
  lacks, misses or shapes otherwise. A backbone (``out_indices``) takes a classifier's weights
  without the layers it does not run (the head conv and the classifier)."""
  expected = dict(jax.eval_shape(
      lambda: build_model(config).init(jax.random.key(0),
                                       np.zeros((1, 32, 32, 3), np.float32), train=False)))
  if config.out_indices is not None:
    variables = {collection: {k: v for k, v in tree.items() if k in expected.get(collection, {})}
                 for collection, tree in variables.items()}
  checkpoints.check_compatible(variables, expected, what)
  return variables


def pretrained_config(path: str, **overrides) -> ModelConfig:
  """The ``ModelConfig`` of a pretrained directory (or training workdir), with ``overrides``."""
  return _load(path, overrides, restore=False)[0]


def load_pretrained(path: str, **overrides) -> tuple[Any, dict[str, Any]]:
  """``(model, {'params', 'batch_stats'})`` from a pretrained directory, a training workdir, a
  pretrained tag or ``hf-hub:ORG/REPO`` (:func:`effnet_jax.hub.resolve`).

  ``overrides`` change settings that do not touch the weights' shapes (``dtype``,
  ``depthwise_impl``, ``drop_path_rate``, ``bn_axis_name``, ...)."""
  config, variables, _ = _load(path, overrides, restore=True)
  return build_model(config), variables


def load_pretrained_with_meta(path: str, **overrides):
  """``(model, variables, meta, config)``: meta as in model.json (class names, source), config
  the model's ``ModelConfig`` (preprocessing metadata) — one read of the directory for all four."""
  config, variables, meta = _load(path, overrides, restore=True)
  return build_model(config), variables, meta, config


def _load(path: str, overrides: dict[str, Any], restore: bool):
  path = os.path.abspath(hub.resolve(path))
  if checkpoints.is_workdir(path):
    return _load_workdir(path, overrides, restore)
  meta = checkpoints.read_pretrained_meta(path)
  config = get_model_config(meta['model'], **(renamed_fields(meta['overrides']) | overrides))
  if not restore:
    return config, None, meta
  variables = checkpoints.read_pretrained_variables(path)
  what = (f'{path}: {checkpoints.PRETRAINED_VARIABLES}/ of the {meta["model"]} that '
          f'{checkpoints.PRETRAINED_META} describes')
  variables = _check_variables(variables, config, what)
  return config, variables, meta


def _load_workdir(path: str, overrides: dict[str, Any], restore: bool):
  """The newest checkpoint of a training run that restores (EMA weights when kept), read
  without writing anything (safe beside the run while it saves)."""
  step, run, variables, weights = checkpoints.read_workdir(path, restore)
  # the sizes the run trained and evaluated at (its config's image sizes win over the model's)
  model_overrides = dict(renamed_fields(run.model_overrides), num_classes=run.num_classes,
                         image_size=run.image_size, eval_image_size=run.eval_image_size) | overrides
  config = get_model_config(run.model, **model_overrides)
  meta = checkpoints.pretrained_meta(
      run.model, model_overrides, {'framework': 'effnet_jax', 'workdir': path, 'step': step},
      run.class_names)
  if not restore:
    return config, None, meta
  meta['source']['weights'] = weights
  if config.out_indices is not None:  # a backbone of the run's network
    variables = _check_variables(variables, config, f'{path}: step {step} as a backbone')
  return config, variables, meta


def create_model(name: str, pretrained: bool | str = False, num_classes: int | None = None,
                 features_only: bool = False, out_indices=None, rng=None, **overrides):
  """A registered model, with released weights when ``pretrained`` is set.

  ``pretrained=False``: the module, as :func:`effnet_jax.models.create_model` builds it.
  ``pretrained=True`` (the model's default tag), a tag name or suffix (``'ns_jft_in1k'``), or any
  weights spec (``hf-hub:ORG/REPO``, a directory): ``(model, variables)``, the model set up as
  the weights were trained and evaluated (padding, BN epsilon, preprocessing metadata). A
  ``num_classes`` other than the weights' gets a new classifier, initialised from ``rng``
  (default ``jax.random.key(0)``), as timm does; ``num_classes=0`` drops it (pooled features).
  ``features_only``/``out_indices``: a backbone returning the feature maps per reduction."""
  if not pretrained:
    return registry.create_model(name, num_classes=1000 if num_classes is None else num_classes,
                                 features_only=features_only, out_indices=out_indices,
                                 **overrides)
  if out_indices is not None and not features_only:
    raise ValueError('out_indices selects feature levels: give features_only=True too')
  registered = get_model_config(name)  # an unknown model is an error naming the close ones
  names_weights = isinstance(pretrained, str) and (hub.is_spec(pretrained)
                                                   or os.path.exists(pretrained))
  spec = pretrained if names_weights else hub.find_tag(name, pretrained).name
  if features_only:
    overrides['out_indices'] = registry.backbone_levels(registered, out_indices)
  config, variables, _ = _load(spec, overrides, restore=True)
  if config.name != name:
    raise ValueError(f'{spec} holds weights of {config.name}, not {name}')
  if not features_only and num_classes is not None and num_classes != config.num_classes:
    variables = _new_classifier(config, variables, num_classes, rng)
    config = dataclasses.replace(config, num_classes=num_classes)
  return build_model(config), variables


def _new_classifier(config: ModelConfig, variables: dict[str, Any], num_classes: int, rng):
  """``variables`` with the classifier of a ``num_classes`` model (fresh, from ``rng``), or
  without one for ``num_classes=0``."""
  params = {k: v for k, v in variables['params'].items() if k != 'classifier'}
  if num_classes:
    model = build_model(dataclasses.replace(config, num_classes=num_classes))
    # compiled, returning the classifier only: every other initialiser is dead code
    params['classifier'] = jax.jit(lambda key: model.init(
        key, np.zeros((1, 32, 32, 3), np.float32), train=False)['params']['classifier'])(
            jax.random.key(0) if rng is None else rng)
  return {'params': params, 'batch_stats': variables.get('batch_stats', {})}
