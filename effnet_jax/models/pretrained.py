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
  to ``directory``, checked against the model's own shapes first.

  Atomic: everything is written to a temporary sibling that is then renamed to ``directory``, so
  a reader never sees new variables beside an old model.json, and an interrupted write leaves
  the previous directory as it was. An existing pretrained directory (or an empty one) there is
  replaced; any other existing directory is an error (its files are not ours to delete)."""
  import shutil
  import tempfile

  import orbax.checkpoint as ocp

  overrides = dict(overrides or {})
  config = get_model_config(model, **overrides)
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  _check_variables(variables, config, f'weights for {model}')
  if class_names is not None and len(class_names) != config.num_classes:
    raise ValueError(f'{len(class_names)} class names for {config.num_classes} classes')
  directory = os.path.abspath(directory)
  if os.path.exists(directory) and not (os.path.exists(os.path.join(directory, _META)) or
                                        os.path.isdir(directory) and not os.listdir(directory)):
    raise FileExistsError(f'{directory} exists and is not a pretrained directory (no {_META}); '
                          'give a new or empty directory')
  parent, name = os.path.split(directory)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(os.path.join(staging, _VARIABLES),
                        jax.tree_util.tree_map(np.asarray, variables))
    meta = {'format': FORMAT, 'model': model, 'overrides': _jsonable(overrides),
            'source': source or {}, 'class_names': class_names}
    with open(os.path.join(staging, _META), 'w') as f:
      json.dump(meta, f, indent=1)
    if os.path.exists(directory):  # swap: the old one is removed only once the new one is in
      old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
      os.rename(directory, os.path.join(old, name))
      os.rename(staging, directory)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return directory


def _check_variables(variables: dict[str, Any], config: ModelConfig, what: str) -> None:
  """CheckpointMismatch naming every array of ``variables`` that ``config``'s model lacks,
  misses or shapes otherwise."""
  from effnet_jax.checkpoints import check_compatible
  expected = jax.eval_shape(
      lambda: build_model(config).init(jax.random.key(0),
                                       np.zeros((1, 32, 32, 3), np.float32), train=False))
  check_compatible(variables, dict(expected), what)


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def read_meta(path: str) -> dict[str, Any]:
  meta_path = os.path.join(path, _META)
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f'{path} is not a pretrained directory (no {_META}) nor a training '
                            'workdir (no checkpoints/)')
  with open(meta_path) as f:
    try:
      meta = json.load(f)
    except ValueError as error:
      raise ValueError(f'{meta_path} is not valid JSON (a write cut short?): {error}') from None
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

  from effnet_jax.checkpoints import CheckpointError, one_line
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(os.path.join(path, _VARIABLES))
  except Exception as error:  # pylint: disable=broad-except
    raise CheckpointError(f'{path}: {_VARIABLES}/ does not restore: {one_line(error)}') from None
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  _check_variables(variables, config, f'{path}: {_VARIABLES}/ of the {meta["model"]} that '
                   f'{_META} describes')
  return config, variables, meta


def _load_workdir(path: str, overrides: dict[str, Any], restore: bool):
  """The newest checkpoint of a training run that restores (EMA weights when kept), read
  without writing anything (safe beside the run while it saves)."""
  import ml_collections
  import orbax.checkpoint as ocp

  from effnet_jax import checkpoints as ckpt_lib
  from effnet_jax.config import set_overrides

  manager = ckpt_lib.open_reader(path)

  def read(step: int):
    run = ckpt_lib.read_run(manager, step)
    if not restore:
      return run, None
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return run, state['state']

  step, (run, state) = ckpt_lib.restore_intact(manager, read)
  manager.close()
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
    return config, None, meta
  use_ema = state.get('ema_params') is not None
  variables = {'params': state['ema_params' if use_ema else 'params'],
               'batch_stats': state['ema_batch_stats' if use_ema else 'batch_stats']}
  meta['source']['weights'] = 'ema' if use_ema else 'raw'
  return config, variables, meta
