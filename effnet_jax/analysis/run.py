"""Runs one ablation experiment config (library side of ``python -m effnet_jax.tools.ablate``;
importable without defining any command-line flags)."""
from __future__ import annotations

import importlib
import os

# experiment name -> 'module:function' taking (config, workdir) and returning the CSV rows
EXPERIMENTS = {
    'scaling': 'effnet_jax.analysis.scaling:run_scaling',
    'compound_search': 'effnet_jax.analysis.scaling:run_compound_search',
    'fused_placement': 'effnet_jax.analysis.fused:run_fused_placement',
    'progressive': 'effnet_jax.analysis.progressive:run_progressive',
    'rexnet_rank': 'effnet_jax.analysis.channels:run_rank_study',
    'rexnet_channels': 'effnet_jax.analysis.channels:run_channel_search',
    'gradcam': 'effnet_jax.analysis.gradcam:run_gradcam',
}
# printed at the end (those an experiment's rows have); results.csv holds every column
SUMMARY_COLUMNS = ('name', 'nonlinearity', 'expansion', 'rank_ratio', 'effective_rank_ratio',
                   'label', 'probability', 'params', 'macs', 'eval_image_size', 'accuracy',
                   'images_per_sec', 'step_time_norm', 'reward')


def run_config(config, workdir: str) -> list[dict]:
  """Runs ``config.experiment`` in ``workdir``; writes ``results.csv``; returns its rows."""
  from effnet_jax.analysis.table import format_table, write_csv
  if config.experiment not in EXPERIMENTS:
    raise ValueError(f'unknown experiment {config.experiment!r}; expected one of '
                     f'{sorted(EXPERIMENTS)}')
  module, function = EXPERIMENTS[config.experiment].split(':')
  rows = getattr(importlib.import_module(module), function)(config, workdir)
  path = write_csv(rows, os.path.join(workdir, 'results.csv'))
  print(format_table(rows, SUMMARY_COLUMNS))
  print(f'[ablate] wrote {path}', flush=True)
  return rows
