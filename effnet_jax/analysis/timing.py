"""The timing pass of a study: every row's train step timed on its own, after the training.

Step times taken from the training logs mix in the input pipeline, evaluation pauses and
whatever else the machine runs while a row trains; rows trained minutes apart on a shared
machine then differ by more than the effect a study looks for. So each row's train step is
timed separately, in the same process once every row has trained (nothing else running in it):
the program the trainer compiled (``builders.lower_train_step``; the persistent compilation
cache makes it a cache hit), a synthetic state of the row's shapes
(``tools.benchmark.synthetic_state``) and a synthetic batch of each stage's image size and batch
size. ``repeats`` rounds, each visiting every row (and every stage of a curriculum row) in turn:
a fresh state, ``warmup`` steps, then ``steps`` timed steps. Interleaving the rows this way puts
a drift of the machine's speed during the pass on every row alike. A curriculum row's training
time is the sum over stages of steps × that stage's time. Each round gives one sample of
``step_time`` (mean seconds per step of the whole schedule) and ``train_seconds`` (the
schedule's train-step time); the row's values are their medians. They are kept in
``runs/<row>/timing.json`` and read back by a rerun with the same repeats and steps (delete the
files to time the rows again, e.g. on an idler machine).
"""
from __future__ import annotations

import gc
import json
import os
import statistics
from typing import Any

import jax
import ml_collections


def time_steps(compiled, state, batch, rng, warmup: int, steps: int) -> float:
  """Seconds per step of ``steps`` steps after ``warmup`` steps."""
  from effnet_jax.tools.benchmark import median_step_seconds
  holder = [state]

  def run(n):
    metrics = None
    for _ in range(n):
      holder[0], metrics = compiled(holder[0], batch, rng)
    jax.block_until_ready((holder[0], metrics))

  return median_step_seconds(run, warmup, steps, repeats=1)


class _Row:
  """A row's compiled train steps (one per stage) and what a timing of one needs."""

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int):
    from effnet_jax import data as data_lib
    from effnet_jax.train import builders
    info = data_lib.dataset_info(builders.data_config(config))
    self.mesh = builders.mesh_for(config, builders.check_config(config))
    self.run = builders.build_run(config, info, self.mesh)
    self.config, self.num_classes = config, num_classes
    self.rng = jax.random.key(config.seed + 1)
    self.compiled = [builders.lower_train_step(config, self.run, self.mesh, stage,
                                               stage.image_size, self.rng).compile()
                     for stage in self.run.stages]

  def time_stage(self, index: int, warmup: int, steps: int) -> float:
    from effnet_jax.tools.benchmark import random_batch, synthetic_state
    stage = self.run.stages[index]
    replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    state = synthetic_state(self.run.abstract_state, self.run.tx, replicated)
    batch = random_batch(self.mesh, stage.batch_size, stage.image_size, self.num_classes,
                         uint8=self.run.prep.augment_on_device)
    return time_steps(self.compiled[index], state, batch, self.rng, warmup, steps)

  def result(self, per_stage: list[list[float]]) -> dict[str, Any]:
    stages = self.run.stages
    total_steps = sum(stage.num_steps for stage in stages)
    repeats = len(per_stage[0])
    totals = [sum(stage.num_steps * times[j] for stage, times in zip(stages, per_stage))
              for j in range(repeats)]
    step_times = [t / total_steps for t in totals]
    step_time = statistics.median(step_times)
    return {'step_time': step_time, 'images_per_sec': self.config.batch_size / step_time,
            'train_seconds': statistics.median(totals),
            '_samples': {'step_time': step_times, 'train_seconds': totals},
            '_stages': [{'start_step': stage.start_step, 'end_step': stage.end_step,
                         'image_size': stage.image_size, 'step_time': statistics.median(times)}
                        for stage, times in zip(stages, per_stage)]}


def time_rows(configs: list[ml_collections.ConfigDict], num_classes: int, repeats: int = 5,
              steps: int = 20, warmup: int = 2) -> list[dict[str, Any]]:
  """Every row's ``step_time``, ``images_per_sec`` and ``train_seconds`` (medians over the
  repeats), ``_samples`` (the per-repeat values) and ``_stages`` (per stage: first step, end
  step, image size, median seconds per step). The repeats are interleaved — repeat j times
  every row's every stage before repeat j + 1 — so a drift of the machine's speed over the
  pass (another process, the clock, the memory) falls on every row alike instead of on the
  rows timed last."""
  if repeats < 1 or steps < 1:
    raise ValueError(f'timing_repeats={repeats}, timing_steps={steps}: both must be >= 1')
  gc.collect()
  rows = [_Row(config, num_classes) for config in configs]
  times = [[[] for _ in row.run.stages] for row in rows]
  for _ in range(repeats):
    for row, row_times in zip(rows, times):
      for index, stage_times in enumerate(row_times):
        stage_times.append(row.time_stage(index, warmup, steps))
  return [row.result(row_times) for row, row_times in zip(rows, times)]


def time_row(config: ml_collections.ConfigDict, num_classes: int, repeats: int = 5,
             steps: int = 20, warmup: int = 2) -> dict[str, Any]:
  """``time_rows`` of one row."""
  return time_rows([config], num_classes, repeats, steps, warmup)[0]


def cached_time_rows(configs: list[ml_collections.ConfigDict], num_classes: int,
                     paths: list[str], repeats: int, steps: int) -> list[dict[str, Any]]:
  """``time_rows``' results, each read back from its path when that holds one of the same
  repeats and steps (``cached``: True); if any row lacks one, every row is timed again in one
  interleaved pass (:func:`cached`)."""
  return cached(paths, {'repeats': repeats, 'steps': steps},
                lambda: time_rows(configs, num_classes, repeats, steps))


def seconds_at(stages: list[dict], step: int) -> float:
  """Train-step seconds up to ``step`` from the timed stages (``time_row``'s ``_stages``)."""
  return sum(max(0, min(step, s['end_step']) - s['start_step']) * s['step_time']
             for s in stages)


class _Inference:
  """A row's compiled eval-mode forward passes: at ``batch_size`` (throughput) and at 1
  (latency), on random weights of the row's shapes and random images."""

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int, batch_size: int):
    import numpy as np

    from effnet_jax.analysis.trainer import model_of
    from effnet_jax.models import build_model
    from effnet_jax.train import builders
    mcfg = model_of(config, num_classes)
    size = builders.preprocessing(config, mcfg).eval_image_size
    model = build_model(mcfg)
    rng = np.random.default_rng(0)
    self.images = {b: jax.numpy.asarray(rng.standard_normal((b, size, size, 3), np.float32))
                   for b in (batch_size, 1)}
    self.variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(
        self.images[1])
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    self.compiled = {b: forward.lower(self.variables, x).compile()
                     for b, x in self.images.items()}

  def time(self, batch: int, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` forward passes (after ``warmup``), one at a time."""
    import time
    compiled, images = self.compiled[batch], self.images[batch]
    for _ in range(warmup):
      jax.block_until_ready(compiled(self.variables, images))
    out = []
    for _ in range(steps):
      start = time.perf_counter()
      jax.block_until_ready(compiled(self.variables, images))
      out.append(time.perf_counter() - start)
    return out


def time_inference(configs: list[ml_collections.ConfigDict], num_classes: int, batch_size: int,
                   repeats: int = 5, steps: int = 20, warmup: int = 2) -> list[dict[str, Any]]:
  """Every row's eval-mode ``infer_images_per_sec`` at ``batch_size`` (median over the rounds
  of each round's mean) and batch-1 latency (``latency_ms`` median, ``latency_p90_ms``, over all
  single passes), with ``_samples`` (per round: images/s; per pass: latency). Interleaved
  rounds as :func:`time_rows`."""
  if repeats < 1 or steps < 1:
    raise ValueError(f'timing_repeats={repeats}, timing_steps={steps}: both must be >= 1')
  import numpy as np
  gc.collect()
  rows = [_Inference(config, num_classes, batch_size) for config in configs]
  rates = [[] for _ in rows]
  latencies = [[] for _ in rows]
  for _ in range(repeats):
    for row, rate, latency in zip(rows, rates, latencies):
      rate.append(batch_size / statistics.mean(row.time(batch_size, warmup, steps)))
      latency.extend(row.time(1, warmup, steps))
  return [{'infer_images_per_sec': statistics.median(rate),
           'latency_ms': 1e3 * statistics.median(latency),
           'latency_p90_ms': 1e3 * float(np.percentile(latency, 90)),
           '_samples': {'infer_images_per_sec': rate, 'latency_ms': [1e3 * t for t in latency]}}
          for rate, latency in zip(rates, latencies)]


def cached(paths: list[str], settings: dict[str, Any], compute) -> list[dict[str, Any]]:
  """``compute()``'s per-row results, each read back from its path when that holds one of the
  same ``settings`` (``cached``: True); if any row lacks one, all rows are computed again in one
  pass (rows measured in different passes do not compare) and the files written atomically."""
  saved = []
  for path in paths:
    if os.path.exists(path):
      with open(path) as f:
        record = json.load(f)
      if record.get('settings') == settings:
        saved.append(dict(record['result'], cached=True))
        continue
    saved.append(None)
  if all(saved):
    return saved
  results = compute()
  for path, result in zip(paths, results):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump({'settings': settings, 'result': result}, f)
    os.replace(tmp, path)  # atomic: a killed pass leaves no torn file
  return [dict(r, cached=False) for r in results]
