"""Where Fused-MBConv helps (EfficientNetV2 Table 3): MBConv replaced by Fused-MBConv in the first
k stages (none, 1-3, 1-5, all), each variant trained and measured for params, MACs, train
images/s and accuracy."""
from __future__ import annotations

import os

import ml_collections

from effnet_jax.analysis import plots, trainer
from effnet_jax.analysis.table import add_rewards, as_tuple
from effnet_jax.models import decode_block_string, get_model_config


def fused_placement(stages, count: int) -> tuple[tuple[str, ...], ...]:
  """``stages`` with the first ``count`` stages Fused-MBConv (``fu``) and the rest MBConv
  (``ir``); every other token of the block strings is kept."""
  if not 0 <= count <= len(stages):
    raise ValueError(f'{count} fused stages: the model has {len(stages)} stages')
  out = []
  for index, stage in enumerate(stages):
    kind = 'fu' if index < count else 'ir'
    for block in stage:
      if decode_block_string(block).block_type not in ('ir', 'fu'):
        raise ValueError(f'{block!r}: only MBConv (ir) and Fused-MBConv (fu) blocks swap')
    out.append(tuple(kind + block[2:] for block in stage))
  return tuple(out)


def placement_name(count: int, num_stages: int) -> str:
  return 'none' if count == 0 else 'all' if count == num_stages else f'stages1-{count}'


def placement_rows(config: ml_collections.ConfigDict) -> list[trainer.Row]:
  stages = get_model_config(config.train.model).stages
  counts = as_tuple(config.fused_stages, 'fused_stages', int)
  return [trainer.Row(placement_name(k, len(stages)),
                      overrides={'stages': fused_placement(stages, k)},
                      info={'fused_stages': k}) for k in counts]


def placement_tests(config: ml_collections.ConfigDict) -> list[str]:
  """EfficientNetV2 Table 3: Fused-MBConv in the early stages (1-3) trains faster than no
  fused stage, and fusing every stage is slower than fusing the early ones — the timing
  pass's step times — at an accuracy no worse than the MBConv baseline's (by 0.5 points)."""
  counts = as_tuple(config.fused_stages, 'fused_stages', int)
  num_stages = len(get_model_config(config.train.model).stages)
  names = {k: placement_name(k, num_stages) for k in counts}
  tests = []
  if 0 in names and 3 in names:
    tests += [f'step_time: {names[3]} < {names[0]}', f'accuracy: {names[3]} > {names[0]} - 0.005']
  if 3 in names and num_stages in names:
    tests.append(f'step_time: {names[num_stages]} > {names[3]}')
  return tests


def run_fused_placement(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  rows = trainer.train_rows(config, placement_rows(config), workdir, num_classes)
  add_rewards(rows)
  plot_placement(rows, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_placement(rows: list[dict], path: str) -> str:
  fig, axes = plots.subplots(5, width=2.9)
  labels = [r['name'] for r in rows]
  panels = [('params', 1e-3, 'params (k)', '{:.0f}'), ('macs', 1e-6, 'MMACs', '{:.2f}'),
            ('images_per_sec', 1, 'train images/s', '{:.0f}'),
            ('accuracy', 100, 'top-1 (%)', '{:.1f}'), ('reward', 1, 'reward', '{:.3f}')]
  for ax, (key, factor, label, fmt) in zip(axes, panels):
    values = [factor * r[key] for r in rows]
    plots.bar(ax, labels, values, label, fmt=fmt,
              errors=plots.errors(rows, factor, key) if key in ('accuracy', 'reward') else None)
    if key in ('accuracy', 'reward') and min(values) < max(values):
      ax.set_ylim(*plots.limits(rows, key, factor))
  return plots.save(fig, path, 'Fused-MBConv in the first k stages (images/s: the timing '
                    f'pass; ± 95 % intervals over {rows[0]["seeds"]} seeds)')
