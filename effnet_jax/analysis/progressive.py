"""Progressive learning against fixed-size training at equal epochs (EfficientNetV2 Sec. 4):
time-to-accuracy curves of the two runs, from their evaluations and logged train-step times."""
from __future__ import annotations

import os

import ml_collections

from effnet_jax.analysis import plots, trainer
from effnet_jax.analysis.table import add_rewards, write_csv


def progressive_rows(config: ml_collections.ConfigDict) -> list[trainer.Row]:
  """The fixed-size twin (the baseline) and the curriculum run; only ``curriculum`` differs."""
  return [trainer.Row('fixed', changes={'curriculum.num_stages': 0}, info={'stages': 0}),
          trainer.Row('progressive', info={'stages': config.train.curriculum.num_stages})]


def curve(run_dir: str, batch_size: int) -> list[dict]:
  """One point per evaluation: step, epoch, train-step seconds so far, top-1."""
  from effnet_jax.train.metrics import read_metrics
  records = read_metrics(run_dir)
  logged = trainer.train_records(records)
  steps_per_epoch = logged[-1]['step'] / logged[-1]['train/epoch']
  return [{'step': r['step'], 'epoch': r['step'] / steps_per_epoch,
           'train_seconds': trainer.seconds_at(records, batch_size, r['step']),
           'accuracy': trainer.accuracy_of(r)}
          for r in records if 'eval/top1' in r and not r.get('final')]


def run_progressive(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  rows = trainer.train_rows(config.train, progressive_rows(config), workdir, num_classes)
  add_rewards(rows)
  curves = {r['name']: curve(r['run_dir'], config.train.batch_size) for r in rows}
  write_csv([dict(run=name, **p) for name, points in curves.items() for p in points],
            os.path.join(workdir, 'curves.csv'))
  plot_curves(curves, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_curves(curves: dict[str, list[dict]], path: str) -> str:
  fig, (time_ax, epoch_ax) = plots.subplots(2)
  for name, points in curves.items():
    for ax, key in ((time_ax, 'train_seconds'), (epoch_ax, 'epoch')):
      ax.plot([p[key] for p in points], [100 * p['accuracy'] for p in points], 'o-', label=name)
  time_ax.set_xlabel('train-step seconds (compilation, evaluation excluded)')
  epoch_ax.set_xlabel('epoch')
  for ax in (time_ax, epoch_ax):
    ax.set_ylabel('top-1 (%)')
    ax.grid(alpha=0.3)
  time_ax.legend(fontsize=8)
  return plots.save(fig, path, 'progressive learning vs fixed size, equal epochs')
