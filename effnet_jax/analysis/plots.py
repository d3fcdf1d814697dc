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


def bar(ax, labels, values, ylabel: str, highlight: int | None = None, fmt: str = '{:.3g}'):
  colors = ['tab:orange' if i == highlight else 'tab:blue' for i in range(len(values))]
  ax.bar(range(len(values)), values, color=colors)
  ax.set_xticks(range(len(values)), labels, rotation=30, ha='right', fontsize=8)
  ax.set_ylabel(ylabel)
  for i, v in enumerate(values):
    ax.annotate(fmt.format(v), (i, v), ha='center', va='bottom', fontsize=7)
