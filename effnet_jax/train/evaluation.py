"""Evaluation: one pass of the eval step over a data set (used by the trainer), and a restored
training run at several test resolutions (the library side of ``python -m effnet_jax.evaluate``;
importable without defining any command-line flags)."""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import ml_collections

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax import data as data_lib
from effnet_jax.config import upgrade_layout
from effnet_jax.distributed import all_processes, barrier
from effnet_jax.train import builders
from effnet_jax.train.metrics import eval_scores
from effnet_jax.train.step import global_batch, make_mesh


def evaluate(eval_step, variables, batches, mesh) -> dict[str, float]:
  """Top-1/top-5/loss over one pass of ``batches`` (masked sums, so padding never counts)."""
  totals = None
  for batch in batches:
    sums = eval_step(variables, global_batch(mesh, batch))
    totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals['count'])
  return {'top1': float(totals['top1']) / count, 'top5': float(totals['top5']) / count,
          'loss': float(totals['loss']) / count, 'count': count}


def evaluate_sizes(workdir: str, image_sizes: list[int] | None = None, step: int | None = None,
                   best: bool = False, batch_size: int = 0) -> list[dict]:
  """``[{'image_size', 'step', 'eval/top1', 'eval/top5', 'eval/loss', 'eval_ema/top1', ...}]``."""
  manager = ckpt_lib.open_reader(workdir)  # read-only: safe beside the run that is saving
  steps = ckpt_lib.finished_steps(str(manager.directory))
  if not steps:
    raise FileNotFoundError(f'no checkpoints in {manager.directory}')
  candidates = None  # the newest that restores
  if best:
    scores = {s: v for s, v in eval_scores(workdir).items() if s in steps}
    if not scores:
      raise ValueError(f'no evaluated checkpoint in {manager.directory} for --best')
    candidates = sorted(scores, key=lambda s: (scores[s], s), reverse=True)  # then the next best
  elif step is not None:
    if step not in steps:
      raise ValueError(f'no checkpoint step {step} in {manager.directory}; steps: {steps}')
    candidates = [step]
  # The run description of the first candidate that reads, then the state of the first one
  # from there on that restores (a step that does not is reported and skipped).
  step, run = ckpt_lib.restore_intact(manager, lambda s: ckpt_lib.read_run(manager, s),
                                      candidates, agree=all_processes)
  config = ml_collections.ConfigDict(upgrade_layout(run.config))  # (an earlier layout too)
  data_config = builders.data_config(config)
  mesh = make_mesh(1)  # per-device statistics: eval uses running statistics only
  built = builders.build_run(config, data_lib.dataset_info(data_config), mesh)
  order = candidates or sorted(steps, reverse=True)
  step, state = ckpt_lib.restore_intact(
      manager, lambda s: ckpt_lib.restore(manager, s, built.abstract_state),
      order[order.index(step):], agree=all_processes)
  manager.close()
  batch = batch_size or built.plan.eval_batch_size
  batch = -(-batch // jax.device_count()) * jax.device_count()
  targets = [('eval', {'params': state.params, 'batch_stats': state.batch_stats})]
  if state.ema_params is not None:
    targets.append(('eval_ema', {'params': state.ema_params,
                                 'batch_stats': state.ema_batch_stats}))
  rows = []
  for size in image_sizes or [built.prep.eval_image_size]:
    prep = dataclasses.replace(built.prep, eval_image_size=size)
    row = {'image_size': size, 'step': step}
    # Compiled before the first batch, then the processes line up (as the trainer does): the
    # first cross-process collective must not wait for a slower host's compilation.
    eval_step = builders.lower_eval_step(built, mesh, batch, size).compile()
    barrier(f'evaluate/compiled/{size}')
    t0 = time.time()
    for prefix, variables in targets:
      batches = data_lib.eval_iterator(data_config, prep, batch, jax.process_index(),
                                       jax.process_count())
      for k, v in evaluate(eval_step, variables, batches, mesh).items():
        row[f'{prefix}/{k}'] = v
    row['seconds'] = round(time.time() - t0, 1)
    rows.append(row)
  return rows


def format_rows(rows: list[dict], image_size: int | None = None) -> str:
  header = ['image', 'top-1', 'top-5', 'loss']
  ema = 'eval_ema/top1' in rows[0]
  if ema:
    header += ['EMA top-1', 'EMA top-5']
  lines = [header]
  for r in rows:
    line = [str(r['image_size']), f"{100 * r['eval/top1']:.2f}", f"{100 * r['eval/top5']:.2f}",
            f"{r['eval/loss']:.4f}"]
    if ema:
      line += [f"{100 * r['eval_ema/top1']:.2f}", f"{100 * r['eval_ema/top5']:.2f}"]
    lines.append(line)
  widths = [max(len(l[i]) for l in lines) for i in range(len(header))]
  return '\n'.join('  '.join(v.rjust(w) for v, w in zip(l, widths)) for l in lines)
