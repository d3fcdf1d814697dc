"""What the ablation configs (configs/ablations/*.py) share: the ``scale`` config argument."""
from __future__ import annotations

import ml_collections

from effnet_jax import recipes
from effnet_jax.analysis.trainer import small_train_config
from effnet_jax.config import check_arg_keys, parse_config_arg

SCALES = ('small', 'imagenet')


def scale_of(arg: str | None, **choices: tuple[str, ...]) -> str:
  """``'small'`` (default: the embedded data set on a CPU) or ``'imagenet'`` (pods); the
  config argument may also hold the keys of ``choices`` (read with :func:`arg_of`)."""
  args = parse_config_arg(arg)
  check_arg_keys(args, {'scale': SCALES, **choices})
  return args.get('scale', 'small')


def arg_of(arg: str | None, key: str, default: str) -> str:
  """The config argument's ``key`` (validated by :func:`scale_of`), else ``default``."""
  return parse_config_arg(arg).get(key, default)


def experiment(name: str, kind: str, train: ml_collections.ConfigDict | None, claim: str = '',
               seeds: int = 3, **settings) -> ml_collections.ConfigDict:
  """An ablation config: ``experiment`` (what runs), ``name`` (the plot's file name),
  ``train`` (the base training config every row changes), ``claim`` (the paper's statement the
  study tests; ``tests`` overrides the experiment's default tests of it, analysis/stats.py),
  ``level`` (of the intervals) and the experiment's settings; a trained study also has
  ``seeds`` (runs per row) and ``timing_repeats`` / ``timing_steps`` (its timing pass). Locked:
  these keys are its schema, so a key set later (in the file or as a flag) must be one of them."""
  common = dict(claim=claim, tests=(), level=0.95)
  if train is not None:
    common.update(seeds=seeds, timing_repeats=10, timing_steps=20)
  config = ml_collections.ConfigDict(dict(experiment=kind, name=name, train=train, **common,
                                          **settings))
  config.lock()
  return config


def search_settings(sampler: str, startup: int = 8, **more) -> dict:
  """The settings of a search study (analysis/search.py): ``storage`` (an SQLAlchemy URL;
  empty: ``WORKDIR/study.db``), ``worker`` (this process's index: seeds its sampler),
  ``seed``, ``sampler`` (random | tpe | nsga2), ``startup`` (TPE's random proposals first, or
  NSGA-II's population), ``heartbeat_seconds`` / ``heartbeat_grace`` (a killed worker's trial
  fails after the grace and its candidate is proposed again)."""
  return dict(storage='', worker=0, seed=0, sampler=sampler, startup=startup,
              heartbeat_seconds=10, heartbeat_grace=60, **more)


def train_config(scale: str, model: str, **small) -> ml_collections.ConfigDict:
  """The base training config: ``small_train_config(model, **small)``, or the model's
  official ImageNet recipe (recipes.py; EfficientNet's for a model without one) for
  ``scale='imagenet'``."""
  if scale == 'small':
    return small_train_config(model, **small)
  return recipes.model_recipe(model) or recipes.efficientnet_v1(model)


def small_progressive_train(epochs: float, image_sizes: tuple[int, ...]
                            ) -> ml_collections.ConfigDict:
  """The small progressive-learning studies' training config: ``recipes.small_progressive``
  for ``epochs`` in stages of ``image_sizes``, evaluated every half epoch (the curves), no
  TensorBoard."""
  train = recipes.small_progressive()
  train.num_epochs = epochs
  train.curriculum.image_sizes = image_sizes
  train.eval_every_epochs = 0.5
  train.log_every_steps = 50
  train.tensorboard = False
  return train
