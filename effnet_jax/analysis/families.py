"""Networks of different families trained on one budget: EfficientNetV2 and ReXNet (CNNs the
papers propose) against ResNet-50 and a Swin Transformer (what they compare with).

Every row trains with the same recipe, batch, steps and seeds (``train``); a row differs only
in ``model`` and its ``model_overrides`` (the small study shrinks each network to a few million
MACs at 32 px). Besides top-1 and the timing pass's train images/s, each row gets its parameters,
MACs, eval-mode images/s at the eval batch and batch-1 latency (median and p90), measured in one
interleaved pass after the training (``timing.time_inference``; ``runs/<row>/inference.json``).

Claim (EfficientNetV2 Sec. 5.2 and Table 7; ReXNet Sec. 4): the ConvNets reach a higher
accuracy than ResNet-50 and the Transformer at a lower training cost. Tests:
``accuracy: <first row> > <other row>`` for every other row and ``train_seconds: <first row> <
swin``."""
from __future__ import annotations

import os

import ml_collections

from effnet_jax.analysis import plots, timing, trainer
from effnet_jax.analysis.table import add_rewards, as_tuple

INFER_COLUMNS = ('infer_images_per_sec', 'latency_ms', 'latency_p90_ms')


def family_rows(config: ml_collections.ConfigDict) -> list[trainer.Row]:
  """One row per name of ``config.networks`` (the first is the baseline): ``models[name]``
  with ``overrides[name]``."""
  rows = []
  for name in as_tuple(config.networks, 'networks', str):
    if name not in config.models:
      raise ValueError(f'networks: {name!r} has no entry in models ({sorted(config.models)})')
    overrides = dict(config.overrides.get(name) or {})
    rows.append(trainer.Row(name, overrides=overrides, changes={'model': config.models[name]},
                            info={'model': config.models[name]}))
  return rows


def family_tests(config: ml_collections.ConfigDict) -> list[str]:
  names = as_tuple(config.networks, 'networks', str)
  first = names[0]
  tests = [f'accuracy: {first} > {other}' for other in names[1:]]
  if 'swin' in names[1:]:
    tests.append(f'train_seconds: {first} < swin')
  return tests


def run_families(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  rows_spec = family_rows(config)
  rows = trainer.train_rows(config, rows_spec, workdir, num_classes)
  configs = [trainer.with_row(config.train, row) for row in rows_spec]
  batch = int(config.train.eval_batch_size or config.train.batch_size)
  repeats, steps = int(config.timing_repeats), int(config.timing_steps)
  measured = timing.cached(
      [os.path.join(workdir, 'runs', row.name, 'inference.json') for row in rows_spec],
      {'repeats': repeats, 'steps': steps, 'batch_size': batch},
      lambda: timing.time_inference(configs, num_classes, batch, repeats, steps))
  for row, result in zip(rows, measured):
    row.update({k: result[k] for k in INFER_COLUMNS})
    row['_samples'].update(result['_samples'])
    print(f'[ablate] inference {row["name"]}: {result["infer_images_per_sec"]:.0f} images/s at '
          f'batch {batch}, batch-1 latency {result["latency_ms"]:.2f} ms (p90 '
          f'{result["latency_p90_ms"]:.2f})' + (', read back' if result['cached'] else ''),
          flush=True)
  add_rewards(rows)
  plot_families(rows, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_families(rows: list[dict], path: str) -> str:
  """Top-1 (± interval) against train and inference images/s, one point per network."""
  fig, axes = plots.subplots(2)
  errors = plots.errors(rows, 100.0)
  for ax, key, label in ((axes[0], 'images_per_sec', 'train images/s (timing pass)'),
                         (axes[1], 'infer_images_per_sec', 'eval images/s')):
    for i, row in enumerate(rows):
      yerr = None if errors is None else [[errors[0][i]], [errors[1][i]]]
      ax.errorbar([row[key]], [100 * row['accuracy']], yerr=yerr, fmt='o', capsize=3,
                  label=f'{row["name"]} ({row["params"] / 1e6:.2f}M, '
                        f'{row["macs"] / 1e6:.1f}M MACs)')
    ax.set_xlabel(label)
    ax.set_ylabel('top-1 (%)')
    ax.set_ylim(*plots.limits(rows, 'accuracy', 100.0))
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  seeds = rows[0].get('seeds', 1) if rows else 0
  return plots.save(fig, path, 'one training budget, four families: accuracy vs throughput '
                    f'(mean ± 95 % interval over {seeds} seeds)')
