"""Runs one ablation experiment config (library side of ``python -m effnet_jax.tools.ablate``;
importable without defining any command-line flags).

After the experiment's rows: the difference of every row to the baseline (the first row) with
its interval, and the study's claim judged from its tests (``analysis/stats.py``): printed, and
written to ``verdict.md`` and ``verdict.json`` beside ``results.csv`` (``seeds.csv`` has one
line per trained run)."""
from __future__ import annotations

import importlib
import json
import math
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
    'families': 'effnet_jax.analysis.families:run_families',
    'rexnet_search': 'effnet_jax.analysis.channel_search:run_channel_search',
    'v2_nas': 'effnet_jax.analysis.nas:run_nas',
}
# experiment name -> 'module:function' taking the config and returning the claim's default tests
# (a config's own ``tests`` win); an experiment without one states no testable claim
CLAIM_TESTS = {
    'scaling': 'effnet_jax.analysis.scaling:scaling_tests',
    'compound_search': 'effnet_jax.analysis.scaling:search_tests',
    'fused_placement': 'effnet_jax.analysis.fused:placement_tests',
    'progressive': 'effnet_jax.analysis.progressive:progressive_tests',
    'rexnet_rank': 'effnet_jax.analysis.channels:rank_tests',
    'rexnet_channels': 'effnet_jax.analysis.channels:channel_tests',
    'families': 'effnet_jax.analysis.families:family_tests',
    'rexnet_search': 'effnet_jax.analysis.channel_search:search_tests',
    'v2_nas': 'effnet_jax.analysis.nas:nas_tests',
}
# printed at the end (those an experiment's rows have); results.csv holds every column
SUMMARY_COLUMNS = ('name', 'nonlinearity', 'expansion', 'rank_ratio', 'effective_rank_ratio',
                   'label', 'probability', 'model', 'params', 'macs', 'eval_image_size', 'seeds',
                   'top1', 'delta', 'images_per_sec', 'infer_images_per_sec', 'latency_ms',
                   'latency_p90_ms', 'candidates', 'fused_early', 'step_time_norm',
                   'reward', 'blocks')


def _function(spec: str):
  module, function = spec.split(':')
  return getattr(importlib.import_module(module), function)


def claim_tests(config) -> tuple[str, ...]:
  """The config's ``tests``, else the experiment's default tests for its rows."""
  tests = tuple(config.get('tests') or ())
  if tests or config.experiment not in CLAIM_TESTS:
    return tests
  return tuple(_function(CLAIM_TESTS[config.experiment])(config))


def printable(rows: list[dict]) -> list[dict]:
  """The rows with ``top1`` and ``delta`` as "mean ± half-interval" in points
  (``stats.Interval.format``)."""
  from effnet_jax.analysis.stats import Interval
  out = []
  for r in rows:
    r = dict(r)
    n = r.get('seeds', 1)
    if 'accuracy_low' in r:
      r['top1'] = Interval(r['accuracy'], r['accuracy_low'], r['accuracy_high'], n).format(100)
    elif 'accuracy' in r:
      r['top1'] = f'{100 * r["accuracy"]:.2f}'
    if 'delta' in r:
      r['delta'] = Interval(r['delta'], r['delta_low'], r['delta_high'], n).format(100)
    out.append(r)
  return out


def judge_rows(config, rows: list[dict], tests: tuple[str, ...], level: float) -> dict:
  """The claim's verdict from the rows' ``_samples`` (no test: "not judged")."""
  from effnet_jax.analysis import stats
  samples = {r['name']: r['_samples'] for r in rows if 'name' in r and '_samples' in r}
  verdict, judgements = stats.judge_claim(tests, samples, level)
  return {'study': config.name, 'claim': config.get('claim', ''), 'verdict': verdict,
          'level': level, 'seeds': config.get('seeds'),
          'tests': [{'test': j.test.text, 'difference': j.difference.mean,
                     'low': j.difference.low, 'high': j.difference.high, 'n': j.difference.n,
                     'verdict': j.verdict, 'reason': j.reason} for j in judgements]}


def format_verdict(result: dict) -> str:
  lines = [f'# {result["study"]}: {result["verdict"].upper()}', '',
           f'Claim: {result["claim"] or "(none stated)"}', '']
  if not result['tests']:
    lines.append('No test: this study states no measurable claim (it is a picture or a '
                 'procedure); nothing to judge.')
    return '\n'.join(lines) + '\n'
  over = (f'the seeds ({result["seeds"]} per row)' if result['seeds'] else
          "each row's samples (its random trials)")
  lines += [f'Intervals: {result["level"]:.0%} t intervals over {over}; Welch intervals for '
            'differences.', '',
            '| test | difference | interval | verdict |', '| --- | --- | --- | --- |']
  for t in result['tests']:
    interval = ('n = 1: none' if math.isnan(t['low']) else
                f'[{t["low"]:.4g}, {t["high"]:.4g}]')
    lines.append(f'| `{t["test"]}` | {t["difference"]:.4g} | {interval} | {t["verdict"]} |')
  return '\n'.join(lines) + '\n'


def _json_safe(value):
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_json_safe(v) for v in value]
  return value


def _write(path: str, text: str) -> None:
  tmp = f'{path}.{os.getpid()}.tmp'  # whole or nothing: search workers may write it together
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def run_config(config, workdir: str) -> list[dict]:
  """Runs ``config.experiment`` in ``workdir``; writes ``results.csv``, ``seeds.csv`` (trained
  studies) and the verdict; returns the rows."""
  from effnet_jax.analysis import stats
  from effnet_jax.analysis.table import add_differences, format_table, write_csv
  if config.experiment not in EXPERIMENTS:
    raise ValueError(f'unknown experiment {config.experiment!r}; expected one of '
                     f'{sorted(EXPERIMENTS)}')
  tests = claim_tests(config)
  for text in tests:  # a malformed test fails before any training
    stats.ClaimTest.parse(text)
  level = float(config.get('level') or stats.LEVEL)
  rows = _function(EXPERIMENTS[config.experiment])(config, workdir)
  add_differences(rows, level)
  path = write_csv(rows, os.path.join(workdir, 'results.csv'))
  per_seed = [s for r in rows for s in r.get('_seeds', ())]
  if per_seed:
    write_csv(per_seed, os.path.join(workdir, 'seeds.csv'))
  print(format_table(printable(rows), SUMMARY_COLUMNS))
  print(f'[ablate] wrote {path}', flush=True)
  result = judge_rows(config, rows, tests, level)
  text = format_verdict(result)
  _write(os.path.join(workdir, 'verdict.md'), text)
  _write(os.path.join(workdir, 'verdict.json'), json.dumps(_json_safe(result), indent=1))
  print(text, flush=True)
  print(f'[ablate] wrote {os.path.join(workdir, "verdict.md")}', flush=True)
  return rows
