"""Result rows: the training-aware NAS reward and the CSV every experiment writes."""
from __future__ import annotations

import csv
import os
from typing import Any, Sequence

# EfficientNetV2's training-aware NAS reward A * S^w * P^v (Sec. 3.3).
REWARD_W = -0.07  # exponent of the normalized train step time S
REWARD_V = -0.05  # exponent of the parameter count P


def nas_reward(accuracy: float, step_time: float, params: float, w: float = REWARD_W,
               v: float = REWARD_V) -> float:
  """``A * S^w * P^v``; S and P in any unit (rewards of one table share it)."""
  if step_time <= 0 or params <= 0:
    raise ValueError(f'step time ({step_time}) and params ({params}) must be positive')
  return accuracy * step_time ** w * params ** v


def add_rewards(rows: list[dict[str, Any]], baseline: int = 0) -> list[dict[str, Any]]:
  """Adds ``step_time_norm``, ``params_norm`` (relative to row ``baseline``) and ``reward``
  to every row with ``accuracy``, ``step_time`` and ``params``; a row with per-seed
  ``_samples['accuracy']`` also gets one reward sample per seed (for its interval).

  With S and P relative to the baseline its reward is its accuracy; normalizing P multiplies
  every reward by the same constant, so the ranking is the paper's.
  """
  base = rows[baseline]
  for row in rows:
    row['step_time_norm'] = row['step_time'] / base['step_time']
    row['params_norm'] = row['params'] / base['params']
    row['reward'] = nas_reward(row['accuracy'], row['step_time_norm'], row['params_norm'])
    samples = row.get('_samples', {})
    if 'accuracy' in samples:
      from effnet_jax.analysis.stats import interval
      samples['reward'] = [nas_reward(a, row['step_time_norm'], row['params_norm'])
                           for a in samples['accuracy']]
      reward = interval(samples['reward'])
      row.update(reward_low=reward.low, reward_high=reward.high)
  return rows


def add_differences(rows: list[dict[str, Any]], level: float, baseline: int = 0,
                    metric: str = 'accuracy') -> list[dict[str, Any]]:
  """Adds ``delta`` (the row's mean ``metric`` minus the baseline row's) with its Welch
  interval ``delta_low``, ``delta_high`` to every other row with ``_samples[metric]``."""
  from effnet_jax.analysis.stats import difference
  base = rows[baseline].get('_samples', {}).get(metric)
  if base is None:
    return rows
  for index, row in enumerate(rows):
    mine = row.get('_samples', {}).get(metric)
    if mine is not None and index != baseline:
      d = difference(mine, base, level)
      row.update(delta=d.mean, delta_low=d.low, delta_high=d.high)
  return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> str:
  """One line per row; the columns are every key in first-seen order."""
  columns: list[str] = []
  for row in rows:  # keys starting with _ are in-memory only (samples, per-seed lines)
    columns += [k for k in row if k not in columns and not k.startswith('_')]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.{os.getpid()}.tmp'  # whole or nothing: search workers may write it together
  with open(tmp, 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: _cell(v) for k, v in row.items() if not k.startswith('_')})
  os.replace(tmp, path)
  return path


def _cell(value):
  if isinstance(value, float):
    return f'{value:.6g}'
  if isinstance(value, (tuple, list)):
    return ' '.join(map(str, value))
  return value


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
  """A plain-text table of ``columns`` (those the rows have)."""
  columns = [c for c in columns if any(c in r for r in rows)]
  lines = [list(columns)] + [[str(_cell(r.get(c, ''))) for c in columns] for r in rows]
  widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
  return '\n'.join('  '.join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def as_tuple(values, name: str, cast) -> tuple:
  """An experiment setting that lists values (a tuple in the config, e.g. ``phis=(1.0, 2.0)``),
  each cast to ``cast``; a comma-separated string is refused with the tuple spelling."""
  if isinstance(values, str):
    raise ValueError(f'{name}={values!r}: give a tuple, e.g. '
                     f'--config.{name}="{tuple(v.strip() for v in values.split(",") if v.strip())}"')
  return tuple(cast(v) for v in (values or ()))
