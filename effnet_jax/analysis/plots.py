"""Matplotlib figures of the experiments (headless: the Agg backend, PNG files)."""
from __future__ import annotations

import os


def subplots(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.4):
  """``(figure, flat list of axes)``."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
  return fig, list(axes.flat)


def save(fig, path: str, title: str = '') -> str:
  import matplotlib.pyplot as plt
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  print(f'[ablate] wrote {path}', flush=True)
  return path


def errors(rows, scale: float = 1.0, key: str = 'accuracy'):
  """Asymmetric error bars ``[[below...], [above...]]`` of the rows' ``key`` interval
  (``key_low``, ``key_high``; none where a row has a single sample), or None."""
  import math
  if not any(f'{key}_low' in r for r in rows):
    return None
  below = [0.0 if math.isnan(r.get(f'{key}_low', math.nan)) else
           scale * (r[key] - r[f'{key}_low']) for r in rows]
  above = [0.0 if math.isnan(r.get(f'{key}_high', math.nan)) else
           scale * (r[f'{key}_high'] - r[key]) for r in rows]
  return [below, above]


def limits(rows, key: str, scale: float = 1.0, pad: float = 0.1) -> tuple[float, float]:
  """y limits around the rows' ``key`` values and their intervals (where known), padded by
  ``pad`` of the span: bars start near the data, error bars stay inside."""
  import math
  values = [scale * r[key] for r in rows]
  values += [scale * r[f'{key}_{end}'] for r in rows for end in ('low', 'high')
             if not math.isnan(r.get(f'{key}_{end}', math.nan))]
  low, high = min(values), max(values)
  span = (high - low) or abs(high) or 1.0
  return low - pad * span, high + 2 * pad * span


def bar(ax, labels, values, ylabel: str, highlight: int | None = None, fmt: str = '{:.3g}',
        errors=None):
  """Bars with their values written on top and, with ``errors`` (see :func:`errors`), error
  bars."""
  colors = ['tab:orange' if i == highlight else 'tab:blue' for i in range(len(values))]
  ax.bar(range(len(values)), values, color=colors, yerr=errors, capsize=3 if errors else 0)
  ax.set_xticks(range(len(values)), labels, rotation=30, ha='right', fontsize=8)
  ax.set_ylabel(ylabel)
  for i, v in enumerate(values):
    ax.annotate(fmt.format(v), (i, v), ha='center', va='bottom', fontsize=7)
