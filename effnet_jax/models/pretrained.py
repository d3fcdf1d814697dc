"""Self-describing weight directories: converted (timm, Keras, TF, lukemelas) or trained.

A pretrained directory holds

  model.json   {"format": "effnet_jax.pretrained/1", "model": registered name,
                "overrides": {ModelConfig field: value}, "source": {...}, "class_names": [...]}
  variables/   an Orbax checkpoint of {'params': ..., 'batch_stats': ...}

so ``load_pretrained(path)`` rebuilds exactly the model the weights belong to (padding, BN
epsilon, activation, number of classes) with no other input. ``load_pretrained`` also accepts a
training workdir (``python -m effnet_jax.main --workdir W``): its latest checkpoint, EMA weights
when the run kept them.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

from effnet_jax.models.registry import ModelConfig, build_model, get_model_config

FORMAT = 'effnet_jax.pretrained/1'
_META = 'model.json'
_VARIABLES = 'variables'


def save_pretrained(directory: str, model: str, variables: dict[str, Any],
                    overrides: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                    class_names: list[str] | None = None) -> str:
  """Writes ``variables`` ({'params', 'batch_stats'}) of registered ``model`` with ``overrides``
  to ``directory`` (created; an existing pretrained directory there is replaced). The variables
  are checked against the model's own shapes first."""
  import orbax.checkpoint as ocp

  from effnet_jax.train.checkpoint import check_compatible

  overrides = dict(overrides or {})
  config = get_model_config(model, **overrides)
  expected = jax.eval_shape(
      lambda: build_model(config).init(jax.random.key(0),
                                       np.zeros((1, 32, 32, 3), np.float32), train=False))
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  check_compatible(variables, dict(expected), f'weights for {model}')
  if class_names is not None and len(class_names) != config.num_classes:
    raise ValueError(f'{len(class_names)} class names for {config.num_classes} classes')
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, _VARIABLES)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(target, jax.tree_util.tree_map(np.asarray, variables), force=True)
  meta = {'format': FORMAT, 'model': model, 'overrides': _jsonable(overrides),
          'source': source or {}, 'class_names': class_names}
  with open(os.path.join(directory, _META), 'w') as f:
    json.dump(meta, f, indent=1)
  return directory


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def read_meta(path: str) -> dict[str, Any]:
  meta_path = os.path.join(path, _META)
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f'{path} is not a pretrained directory (no {_META}) nor a training '
                            'workdir (no checkpoints/)')
  with open(meta_path) as f:
    meta = json.load(f)
  if meta.get('format') != FORMAT:
    raise ValueError(f'{meta_path}: format {meta.get("format")!r}, expected {FORMAT!r}')
  return meta


def pretrained_config(path: str, **overrides) -> ModelConfig:
  """The ``ModelConfig`` of a pretrained directory (or training workdir), with ``overrides``."""
  return _load(path, overrides, restore=False)[0]


def load_pretrained(path: str, **overrides) -> tuple[Any, dict[str, Any]]:
  """``(model, {'params', 'batch_stats'})`` from a pretrained directory or a training workdir.

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
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, 'checkpoints')) and not os.path.exists(
      os.path.join(path, _META)):
    return _load_workdir(path, overrides, restore)
  meta = read_meta(path)
  config = get_model_config(meta['model'], **(meta['overrides'] | overrides))
  if not restore:
    return config, None, meta
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as checkpointer:
    variables = checkpointer.restore(os.path.join(path, _VARIABLES))
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  return config, variables, meta


def _load_workdir(path: str, overrides: dict[str, Any], restore: bool):
  """The latest checkpoint of a training run (EMA weights when kept)."""
  import ml_collections
  import orbax.checkpoint as ocp

  from effnet_jax.train import checkpoint as ckpt_lib
  from effnet_jax.config import set_overrides

  manager = ckpt_lib.create_manager(path, keep=1000, async_save=False)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'no checkpoints in {manager.directory}')
  run = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
  config_dict = ml_collections.ConfigDict(run['config'])
  class_names = run.get('class_names')
  # the sizes the run trained and evaluated at (its config's image sizes win over the model's)
  model_overrides = dict(set_overrides(config_dict), num_classes=int(run['num_classes']),
                         train_size=int(run['image_size']),
                         eval_size=int(run['eval_image_size'])) | overrides
  config = get_model_config(config_dict.model, **model_overrides)
  meta = {'format': FORMAT, 'model': config_dict.model, 'overrides': model_overrides,
          'source': {'framework': 'effnet_jax', 'workdir': path, 'step': step},
          'class_names': class_names}
  if not restore:
    manager.close()
    return config, None, meta
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  state = state['state']
  use_ema = state.get('ema_params') is not None
  variables = {'params': state['ema_params' if use_ema else 'params'],
               'batch_stats': state['ema_batch_stats' if use_ema else 'batch_stats']}
  meta['source']['weights'] = 'ema' if use_ema else 'raw'
  return config, variables, meta
