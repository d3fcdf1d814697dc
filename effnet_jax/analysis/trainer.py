"""Experiment rows trained by the real trainer, and what a row measures.

A :class:`Row` is a change to a base training config (model overrides and config keys). Each
trains through ``effnet_jax.train.loop.train_and_evaluate`` in ``WORKDIR/runs/<name>`` — the
checkpoints, ``metrics.jsonl`` and progress line of any other run — and is measured from it:
accuracy (EMA weights where the run keeps them), parameters and MACs
(``effnet_jax.models.utils.profile``) and the train step time (the median of the logged
intervals after the first, which holds the input pipeline's warm-up). A finished run is read
back instead of trained again, so an interrupted experiment resumes where it stopped.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import statistics
from typing import Any

import ml_collections
import numpy as np

from effnet_jax import recipes
from effnet_jax.models import build_model
from effnet_jax.models.utils import count_params, profile


@dataclasses.dataclass(frozen=True)
class Row:
  """One trained variant: ``overrides`` of ``model_overrides``, ``changes`` of other config
  keys (flattened, e.g. ``{'input.image_size': 24}``), ``info`` columns of its CSV line."""
  name: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  changes: dict[str, Any] = dataclasses.field(default_factory=dict)
  info: dict[str, Any] = dataclasses.field(default_factory=dict)


def small_train_config(model: str = 'efficientnet_b0', image_size: int = 24,
                       num_train_steps: int = 240, batch_size: int = 64
                       ) -> ml_collections.ConfigDict:
  """The embedded default job's recipe (``recipes.small_cpu``, configs/default.py) cut to seconds
  per row on a CPU: Fashion-MNIST at ``image_size`` px, AdamW 0.016 per 256 with cosine decay
  after a short warm-up, no EMA, flips only."""
  c = recipes.small_cpu(model, image_size, batch_size=batch_size, base_learning_rate=0.016,
                        warmup_epochs=0.05, ema_decay=0.0)
  c.num_train_steps = num_train_steps
  c.log_every_steps = 20
  c.eval_every_epochs = 0.0
  c.checkpoint_every_steps = 100_000
  c.keep_checkpoints = 1
  c.tensorboard = False
  return c


def with_row(base: ml_collections.ConfigDict, row: Row) -> ml_collections.ConfigDict:
  """A locked copy of ``base`` with the row's model overrides and config changes (an unknown
  key is an error)."""
  config = copy.deepcopy(base)
  config.lock()
  for key, value in row.overrides.items():
    config.model_overrides[key] = value
  config.update_from_flattened_dict(row.changes)
  return config


def model_of(config: ml_collections.ConfigDict, num_classes: int):
  """The ``ModelConfig`` a training config builds."""
  from effnet_jax.train import builders
  return builders.model_config(config, num_classes)


def model_cost(config: ml_collections.ConfigDict, num_classes: int) -> dict[str, int]:
  """Parameters and MACs of one image at the config's eval size."""
  from effnet_jax.train import builders
  mcfg = model_of(config, num_classes)
  size = builders.preprocessing(config, mcfg).eval_image_size
  variables, macs = profile(build_model(mcfg), size)
  return {'params': count_params(variables['params']), 'macs': macs, 'eval_image_size': size}


def train_records(records: list[dict]) -> list[dict]:
  return [r for r in records if 'train/images_per_sec' in r]


def step_time(records: list[dict], batch_size: int, warmup_logs: int = 1) -> float:
  """Median seconds per train step over the logged intervals after the first ``warmup_logs``."""
  train = train_records(records)
  if not train:
    raise ValueError('no train/images_per_sec records: log_every_steps is longer than the run')
  timed = train[warmup_logs:] or train
  return statistics.median(batch_size / r['train/images_per_sec'] for r in timed)


def seconds_at(records: list[dict], batch_size: int, step: int) -> float:
  """Seconds spent in train steps up to ``step``, from the logged intervals (each at its own
  images/s; compilation and evaluation pauses are excluded, the trainer restarts its clock
  after them). A step inside an interval is interpolated at that interval's rate."""
  total, previous = 0.0, 0
  for r in train_records(records):
    seconds_per_step = batch_size / r['train/images_per_sec']
    if r['step'] >= step:
      return total + (step - previous) * seconds_per_step
    total += (r['step'] - previous) * seconds_per_step
    previous = r['step']
  return total


def final_record(run_dir: str) -> dict | None:
  from effnet_jax.train.metrics import read_metrics
  if not os.path.exists(os.path.join(run_dir, 'metrics.jsonl')):
    return None
  finals = [r for r in read_metrics(run_dir) if r.get('final')]
  return finals[-1] if finals else None


def accuracy_of(record: dict) -> float:
  """Top-1 of the EMA weights where the run kept them (the recipes' reported numbers)."""
  return record.get('eval_ema/top1', record['eval/top1'])


def train_row(base: ml_collections.ConfigDict, row: Row, workdir: str, num_classes: int,
              index: int = 0, total: int = 1) -> dict[str, Any]:
  """Trains ``row`` (unless its run finished before) and returns its CSV line."""
  from effnet_jax.train.loop import train_and_evaluate
  from effnet_jax.train.metrics import read_metrics

  config = with_row(base, row)
  run_dir = os.path.join(workdir, 'runs', row.name)
  cost = model_cost(config, num_classes)
  described = ', '.join(f'{k} {_short(v)}' for k, v in row.info.items())
  print(f'[ablate] {index + 1}/{total} {row.name}: {described}; {cost["params"]:,} params, '
        f'{cost["macs"] / 1e6:.2f} M MACs at {cost["eval_image_size"]} px', flush=True)
  final = final_record(run_dir)
  if final is None:
    train_and_evaluate(config, run_dir)
    final = final_record(run_dir)
  else:
    print(f'[ablate] {row.name}: finished before in {run_dir}; read back', flush=True)
  records = read_metrics(run_dir)
  seconds = step_time(records, config.batch_size)
  return {'name': row.name, **row.info, **cost, 'accuracy': accuracy_of(final),
          'step_time': seconds, 'images_per_sec': config.batch_size / seconds,
          'train_seconds': seconds_at(records, config.batch_size, final['step']),
          'wall_seconds': final['wall_seconds'], 'run_dir': run_dir}


def _short(value):
  return f'{value:.4g}' if isinstance(value, float) else value


def train_rows(base: ml_collections.ConfigDict, rows: list[Row], workdir: str,
               num_classes: int) -> list[dict[str, Any]]:
  return [train_row(base, row, workdir, num_classes, i, len(rows)) for i, row in enumerate(rows)]


def num_classes_of(config: ml_collections.ConfigDict) -> int:
  from effnet_jax import data as data_lib
  from effnet_jax.train.builders import data_config
  return data_lib.dataset_info(data_config(config)).num_classes


def eval_images(config: ml_collections.ConfigDict, count: int) -> np.ndarray:
  """The first ``count`` images of the config's eval split, preprocessed as its evaluation."""
  from effnet_jax import data as data_lib
  from effnet_jax.train.builders import data_config, preprocessing
  mcfg = model_of(config, num_classes_of(config))
  batch = next(iter(data_lib.eval_iterator(data_config(config), preprocessing(config, mcfg),
                                            count, 0, 1)))
  return batch['images'][batch['mask'] > 0]
