"""Experiment rows trained by the real trainer, and what a row measures.

A :class:`Row` is a change to a base training config (model overrides and config keys). Each
trains through ``effnet_jax.train.loop.train_and_evaluate`` in ``WORKDIR/runs/<name>`` — the
checkpoints, ``metrics.jsonl`` and progress line of any other run — and is measured from it:
accuracy (EMA weights where the run keeps them), parameters and MACs
(``effnet_jax.models.utils.profile``). Every row trains ``seeds`` times, each seed in
``runs/<name>/seed<k>`` with ``config.seed + k``; the train step time comes from a separate
timing pass (``analysis/timing.py``), not from the training logs. A finished run is read back
instead of trained again, so an interrupted experiment resumes where it stopped and a rerun
with more seeds trains only the new ones.
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


def final_record(run_dir: str) -> dict | None:
  from effnet_jax.train.metrics import read_metrics
  if not os.path.exists(os.path.join(run_dir, 'metrics.jsonl')):
    return None
  finals = [r for r in read_metrics(run_dir) if r.get('final')]
  return finals[-1] if finals else None


def accuracy_of(record: dict) -> float:
  """Top-1 of the EMA weights where the run kept them (the recipes' reported numbers)."""
  return record.get('eval_ema/top1', record['eval/top1'])


def seed_config(base: ml_collections.ConfigDict, row: Row, seed: int) -> ml_collections.ConfigDict:
  """The row's config trained with seed ``base.seed + seed`` (initialization, data order,
  augmentation and dropout all follow ``config.seed``)."""
  config = with_row(base, row)
  config.seed = base.seed + seed
  return config


def seed_dir(workdir: str, name: str, seed: int) -> str:
  return os.path.join(workdir, 'runs', name, f'seed{seed}')


def train_seed(base: ml_collections.ConfigDict, row: Row, workdir: str, seed: int,
               label: str) -> dict[str, Any]:
  """Trains ``row`` with seed index ``seed`` (unless that run finished before: then it is read
  back) and returns its per-seed line."""
  from effnet_jax.train.loop import train_and_evaluate
  config = seed_config(base, row, seed)
  run_dir = seed_dir(workdir, row.name, seed)
  final = final_record(run_dir)
  if final is None:
    print(f'[ablate] {label} {row.name} seed {seed}: training in {run_dir}', flush=True)
    train_and_evaluate(config, run_dir)
    final = final_record(run_dir)
  else:
    print(f'[ablate] {label} {row.name} seed {seed}: finished before; read back', flush=True)
  return {'name': row.name, 'seed': config.seed, 'accuracy': accuracy_of(final),
          'step': final['step'], 'wall_seconds': final['wall_seconds'], 'run_dir': run_dir}


def _short(value):
  return f'{value:.4g}' if isinstance(value, float) else value


def train_rows(config: ml_collections.ConfigDict, rows: list[Row], workdir: str,
               num_classes: int) -> list[dict[str, Any]]:
  """Trains every row ``config.seeds`` times (seed-major: a complete first pass over the rows
  comes first), then times every row in a separate pass (``analysis.timing``), and returns one
  line per row: its settings, params and MACs, the mean accuracy with its interval over the
  seeds, the timing pass's step time, and ``_samples`` (per-seed values for the verdicts) and
  ``_seeds`` (the per-seed lines)."""
  from effnet_jax.analysis import stats, timing
  base, seeds = config.train, int(config.seeds)
  if seeds < 1:
    raise ValueError(f'seeds={seeds}: train every row at least once (seeds >= 1)')
  costs = []
  for i, row in enumerate(rows):
    cost = model_cost(with_row(base, row), num_classes)
    costs.append(cost)
    described = ', '.join(f'{k} {_short(v)}' for k, v in row.info.items())
    print(f'[ablate] row {i + 1}/{len(rows)} {row.name}: {described}; {cost["params"]:,} params, '
          f'{cost["macs"] / 1e6:.2f} M MACs at {cost["eval_image_size"]} px', flush=True)
  runs = {row.name: [] for row in rows}
  for seed in range(seeds):
    for i, row in enumerate(rows):
      runs[row.name].append(train_seed(base, row, workdir, seed,
                                       f'{seed * len(rows) + i + 1}/{seeds * len(rows)}'))
  timed_rows = timing.cached_time_rows(
      [with_row(base, row) for row in rows], num_classes,
      [os.path.join(workdir, 'runs', row.name, 'timing.json') for row in rows],
      int(config.timing_repeats), int(config.timing_steps))
  out = []
  for row, cost, timed in zip(rows, costs, timed_rows):
    print(f'[ablate] timing {row.name}: {1e3 * timed["step_time"]:.2f} ms per step (median '
          f'of {config.timing_repeats} interleaved repeats'
          f'{", read back" if timed["cached"] else ""})', flush=True)
    accuracies = [r['accuracy'] for r in runs[row.name]]
    acc = stats.interval(accuracies, config.level)
    out.append({'name': row.name, **row.info, **cost, 'accuracy': acc.mean,
                'accuracy_low': acc.low, 'accuracy_high': acc.high, 'seeds': len(accuracies),
                'accuracy_seeds': accuracies,
                **{k: v for k, v in timed.items() if not k.startswith('_') and k != 'cached'},
                'wall_seconds': statistics.mean(r['wall_seconds'] for r in runs[row.name]),
                'run_dir': runs[row.name][0]['run_dir'],
                '_samples': {'accuracy': accuracies, **timed['_samples']},
                '_seeds': runs[row.name], '_stages': timed['_stages']})
  return out


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
