"""Progressive learning against fixed-size training at equal epochs (EfficientNetV2 Sec. 4):
time-to-accuracy curves of the two runs, from their evaluations and the timing pass.

Claim (V2 Sec. 4, Table 7): progressive learning reaches the fixed-size run's accuracy in less
training time. Tests: the progressive run's train-step time (the timing pass: each stage's
step time × its steps) below the fixed run's, and its final accuracy no worse than the fixed
run's by more than ``margin``."""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from effnet_jax.analysis import plots, stats, timing, trainer
from effnet_jax.analysis.table import add_rewards, write_csv


def progressive_rows(config: ml_collections.ConfigDict) -> list[trainer.Row]:
  """The fixed-size twin (the baseline) and the curriculum run; only ``curriculum`` differs."""
  return [trainer.Row('fixed', changes={'curriculum.num_stages': 0}, info={'stages': 0}),
          trainer.Row('progressive', info={'stages': config.train.curriculum.num_stages})]


def progressive_tests(config: ml_collections.ConfigDict) -> list[str]:
  return ['train_seconds: progressive < fixed',
          f'accuracy: progressive > fixed - {float(config.margin):g}']


def curve(run_dir: str, stages: list[dict]) -> list[dict]:
  """One point per evaluation of a run: step, epoch, train-step seconds so far (the timing
  pass's stages), top-1."""
  from effnet_jax.train.metrics import read_metrics
  records = read_metrics(run_dir)
  logged = trainer.train_records(records)
  steps_per_epoch = logged[-1]['step'] / logged[-1]['train/epoch']
  return [{'step': r['step'], 'epoch': r['step'] / steps_per_epoch,
           'train_seconds': timing.seconds_at(stages, r['step']),
           'accuracy': trainer.accuracy_of(r)}
          for r in records if 'eval/top1' in r]


def mean_curve(curves: list[list[dict]], level: float) -> list[dict]:
  """The seeds' curves averaged per evaluation step, with the accuracy's interval."""
  steps = sorted(set.intersection(*({p['step'] for p in c} for c in curves)))
  out = []
  for step in steps:
    points = [next(p for p in c if p['step'] == step) for c in curves]
    acc = stats.interval([p['accuracy'] for p in points], level)
    out.append({'step': step, 'epoch': points[0]['epoch'],
                'train_seconds': points[0]['train_seconds'], 'accuracy': acc.mean,
                'accuracy_low': acc.low, 'accuracy_high': acc.high, 'seeds': acc.n})
  return out


def run_progressive(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  rows = trainer.train_rows(config, progressive_rows(config), workdir, num_classes)
  add_rewards(rows)
  curves = {r['name']: mean_curve([curve(s['run_dir'], r['_stages']) for s in r['_seeds']],
                                  config.level) for r in rows}
  write_csv([dict(run=name, **p) for name, points in curves.items() for p in points],
            os.path.join(workdir, 'curves.csv'))
  plot_curves(curves, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_curves(curves: dict[str, list[dict]], path: str) -> str:
  fig, (time_ax, epoch_ax) = plots.subplots(2)
  for name, points in curves.items():
    for ax, key in ((time_ax, 'train_seconds'), (epoch_ax, 'epoch')):
      x = [p[key] for p in points]
      y = np.array([100 * p['accuracy'] for p in points])
      line, = ax.plot(x, y, 'o-', label=name)
      low = np.array([100 * p['accuracy_low'] for p in points])
      high = np.array([100 * p['accuracy_high'] for p in points])
      if not np.isnan(low).all():
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
  time_ax.set_xlabel('train-step seconds (timing pass: step time × steps)')
  epoch_ax.set_xlabel('epoch')
  for ax in (time_ax, epoch_ax):
    ax.set_ylabel('top-1 (%)')
    ax.grid(alpha=0.3)
  time_ax.legend(fontsize=8)
  seeds = next(iter(curves.values()))[-1]['seeds'] if curves else 0
  return plots.save(fig, path, 'progressive learning vs fixed size, equal epochs '
                    f'(mean, 95 % band over {seeds} seeds)')
