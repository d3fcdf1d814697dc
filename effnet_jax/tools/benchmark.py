"""Train-step and inference throughput: images/s, compile time, memory, XLA FLOPs and bytes.

  python -m effnet_jax.tools.benchmark --model efficientnet_b0 --mode train --batch_size 256 \\
      --image_size 224 --dtype bf16 --vs_timm            # one case, beside timm
  python -m effnet_jax.tools.benchmark --suite --vs_timm --json results.json   # the benchmark suite
  python -m effnet_jax.tools.benchmark --model efficientnet_b0 --mode train --batch_size 128 \\
      --image_size 32 --dtype f32 --vs_timm              # the CPU case (docs/performance.md)

``train`` times the real train step of ``effnet_jax/train/step.py`` built as the trainer builds
it (the model's recipe, ``configs/<family>.py:variant=...``: optimizer, BN update, EMA, stochastic
depth, Mixup/CutMix where the recipe has them, sharded over every device; curriculum off, the given
size); ``infer`` the eval step. Inputs are random arrays already on the device (the input
pipeline has its own benchmark: ``effnet_jax.tools.benchmark_input``); the weights are synthetic
(kernels normal / sqrt(fan-in)), the optimizer state and EMA built from them by the recipe's
optimizer.

Numbers: the median over ``--repeats`` timed runs of ``--steps`` steps after ``--warmup`` steps,
each run ended by ``block_until_ready``; compile time of ``lower().compile()``; peak device
memory from ``device.memory_stats()`` where the backend reports it (GPU, TPU: the peak since the
process started, so a suite shows a running maximum; run one case per process for each case's
own peak), else XLA's ``memory_analysis()`` of the program (arguments + temporaries + outputs,
marked ``~``); FLOPs
and bytes accessed per device and step from the compiled program's ``cost_analysis()``, hence
the achieved FLOP/s and the fraction of the device's memory bandwidth (``--peak_bandwidth``
overrides the built-in table of accelerator peaks).

``--vs_timm`` measures timm's model of the same architecture in the same run: channels_last,
torch.compile for training (falls back to eager where compiling fails, and says so), eager for
inference, bf16 autocast on a GPU (float32 on the CPU), the recipe's optimizer (timm's
``rmsproptf`` or Nesterov SGD), label smoothing, drop-path and EMA as ours.
"""
from __future__ import annotations

import sys

if __name__ == '__main__':  # before jax loads: see effnet_jax/runtime.py
  from effnet_jax.runtime import use_caching_allocator
  use_caching_allocator()

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import statistics
import subprocess
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax import cli, recipes
from effnet_jax.config import base_config, set_overrides
from effnet_jax.models import get_model_config
from effnet_jax.models.utils import forward_chunk

MODES = ('train', 'infer', 'latency')
DTYPES = {'bf16': 'bfloat16', 'f32': 'float32'}
NUM_CLASSES = 1000

# Peak memory bandwidth (bytes/s) by device kind, most specific first.
PEAK_BANDWIDTH = (
    ('H100 PCIe', 2.0e12), ('H100 NVL', 3.9e12), ('H100', 3.35e12), ('H200', 4.8e12),
    ('GH200', 4.0e12), ('A100-SXM4-80GB', 2.04e12), ('A100', 1.56e12), ('L4', 0.3e12),
    ('TPU v4', 1.2e12), ('TPU v5 lite', 0.82e12), ('TPU v5e', 0.82e12), ('TPU v5', 2.76e12),
    ('TPU v6', 1.64e12),
)


@dataclasses.dataclass(frozen=True)
class Case:
  model: str
  mode: str  # train | infer | latency (the eval step's time per call, one call at a time)
  batch_size: int
  image_size: int
  dtype: str = 'bf16'  # bf16 | f32


SUITE_SIZES = (('efficientnet_b0', 256, 224), ('efficientnetv2_s', 128, 300),
               ('rexnet_100', 256, 224), ('efficientnet_b4', 64, 380))


def suite(dtype: str) -> list[Case]:
  """The issue's suite: B0@224 bs256, V2-S@300 bs128, ReXNet-1.0@224 bs256, B4@380 bs64."""
  return [Case(model, mode, batch, size, dtype) for model, batch, size in SUITE_SIZES
          for mode in MODES]


@dataclasses.dataclass
class Result:
  """One measured implementation of one case."""
  case: Case
  impl: str  # effnet_jax | timm (compiled) | timm (eager)
  images_per_sec: float
  step_ms: float
  compile_s: float
  peak_memory_bytes: float | None = None
  memory_source: str = ''  # device | xla (an estimate from the program) | torch
  flops_per_step: float | None = None  # per device
  bytes_per_step: float | None = None  # per device
  achieved_flops: float | None = None  # per device, FLOP/s
  bandwidth_fraction: float | None = None  # of the device's peak memory bandwidth
  note: str = ''
  p90_ms: float | None = None  # latency mode: 90th percentile of the single calls
  # --interleave: ms per step of each timed repeat (latency mode: each repeat's median call)
  repeat_ms: list[float] | None = None


# ---- measurement helpers (pure) ----

def median_step_seconds(run_steps: Callable[[int], None], warmup: int, steps: int,
                        repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
  """Median seconds per step: ``run_steps(n)`` runs n steps and waits for the device."""
  if warmup:
    run_steps(warmup)
  times = []
  for _ in range(repeats):
    start = clock()
    run_steps(steps)
    times.append((clock() - start) / steps)
  return statistics.median(times)


def single_calls(call: Callable[[], None], calls: int,
                 clock: Callable[[], float] = time.perf_counter) -> list[float]:
  """Seconds of each of ``calls`` single calls; ``call()`` runs one and waits for its result."""
  times = []
  for _ in range(calls):
    start = clock()
    call()
    times.append(clock() - start)
  return times


def median_p90(times: list[float]) -> tuple[float, float]:
  times = sorted(times)
  return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def paired_ratio(ours_ms: list[float], theirs_ms: list[float]) -> float:
  """Median over interleaved repeats of their time / ours (> 1: ours is faster): each pair ran
  back to back, so a slow spell of the machine slows both sides of it."""
  return statistics.median(t / o for o, t in zip(ours_ms, theirs_ms))


def peak_bandwidth(device_kind: str, override: float | None = None) -> float | None:
  """Peak memory bandwidth in bytes/s of a device kind (None where unknown)."""
  if override:
    return override
  for name, value in PEAK_BANDWIDTH:
    if name.lower() in device_kind.lower():
      return value
  return None


def cost_figures(cost) -> tuple[float | None, float | None]:
  """(FLOPs, bytes accessed) of a compiled program's ``cost_analysis()`` (dict or [dict])."""
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost:
    return None, None
  return cost.get('flops'), cost.get('bytes accessed')


def program_memory(compiled) -> float | None:
  """Bytes XLA plans for one execution: arguments + temporaries + outputs not aliased."""
  try:
    m = compiled.memory_analysis()
  except (NotImplementedError, AttributeError):
    return None
  if m is None:
    return None
  return float(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes -
               m.alias_size_in_bytes)


def device_peak_memory(device) -> float | None:
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  return float(stats['peak_bytes_in_use']) if stats and 'peak_bytes_in_use' in stats else None


def with_rates(result: Result, bandwidth: float | None) -> Result:
  """Fills achieved FLOP/s and the bandwidth fraction from the per-step figures."""
  seconds = result.step_ms / 1e3
  if result.flops_per_step:
    result.achieved_flops = result.flops_per_step / seconds
  if result.bytes_per_step and bandwidth:
    result.bandwidth_fraction = result.bytes_per_step / seconds / bandwidth
  return result


# ---- effnet_jax ----

def recipe_config(case: Case, overrides: dict | None = None,
                  device_randaugment: bool = False) -> ml_collections.ConfigDict:
  """The model's recipe (``recipes.model_recipe``: ``configs/<family>.py:variant=...``, else the
  base config) at the case's batch, size and dtype, fixed size (no curriculum),
  ``depthwise_impl='auto'`` (what the CPU configs set; the grouped convolution on accelerators),
  with ``overrides`` as model overrides;
  ``device_randaugment``: uint8 batches, RandAugment (N=2, the recipe's magnitude) and
  normalization inside the train step (``augment.augment_on_device``)."""
  c = recipes.model_recipe(case.model)
  if c is None:
    c = base_config()
    c.model = case.model
  c.curriculum.num_stages = 0
  c.batch_size = case.batch_size
  c.input.update(image_size=case.image_size, eval_image_size=case.image_size)
  c.eval_batch_size = case.batch_size
  c.dtype = DTYPES[case.dtype]
  c.model_overrides.depthwise_impl = 'auto'  # as every CPU config here: unrolled on the CPU
  c.num_train_steps = 1_000_000
  for key, value in (overrides or {}).items():
    c.model_overrides[key] = value
  if device_randaugment:
    c.augment.augment = 'randaugment'
    c.augment.augment_on_device = True
  return c


def synthetic_value(path, leaf: jax.ShapeDtypeStruct, rng: np.random.Generator) -> np.ndarray:
  """A parameter or BN statistic of the right scale: kernels normal / sqrt(fan-in), BN scales and
  variances 1, the rest 0 (the train step's speed does not depend on the values; compiling
  ``model.init`` would add a slow compilation of its own, even for a tiny model on a CPU)."""
  name = getattr(path[-1], 'key', '') if path else ''
  if len(leaf.shape) >= 2:
    value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
  else:
    value = np.full(leaf.shape, 1.0 if name in ('scale', 'var') else 0.0)
  return value.astype(leaf.dtype)


def synthetic_state(abstract_state, tx, sharding):
  """A train state of the abstract state's structure with synthetic weights, the optimizer
  state from ``tx.init`` and the EMA copies (where the state has them)."""
  from effnet_jax.train.step import TrainState
  rng = np.random.default_rng(0)
  fill = lambda tree: jax.tree_util.tree_map_with_path(
      lambda path, leaf: synthetic_value(path, leaf, rng), tree)
  params, batch_stats = fill(abstract_state.params), fill(abstract_state.batch_stats)
  ema = abstract_state.ema_params is not None

  def build(params, batch_stats):
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params), ema_params=params if ema else None,
                      ema_batch_stats=batch_stats if ema else None)
  return jax.jit(build, out_shardings=sharding)(params, batch_stats)


def random_batch(mesh, batch_size: int, image_size: int, num_classes: int = NUM_CLASSES,
                 uint8: bool = False, mask: bool = False):
  """A random global batch: images float32 N(0, 1), or (``uint8``: what an
  ``augment_on_device`` pipeline sends) uniform uint8; labels below ``num_classes``; with
  ``mask`` the eval step's all-ones mask."""
  from effnet_jax.train.step import global_batch
  rng = np.random.default_rng(0)
  shape = (batch_size, image_size, image_size, 3)
  batch = {'images': (rng.integers(0, 256, shape, np.uint8) if uint8 else
                      rng.normal(size=shape).astype(np.float32)),
           'labels': rng.integers(0, num_classes, batch_size).astype(np.int32)}
  if mask:
    batch['mask'] = np.ones(batch_size, np.float32)
  return global_batch(mesh, batch)


def build_case(case: Case, overrides: dict | None = None, device_randaugment: bool = False,
               devices=None, config: ml_collections.ConfigDict | None = None):
  """``(run, mesh, state, batch, step)`` of a case, built as a training run builds them: the
  recipe (``config``, default :func:`recipe_config`), a synthetic state replicated over the mesh
  of ``devices`` (default every device, the config's BN groups), a random batch and the jitted
  train step (``mode='train'``) or eval step."""
  # TensorFlow (through the data package) loads here, never in the timm worker process.
  from effnet_jax.data import DatasetInfo
  from effnet_jax.train import builders
  from effnet_jax.train.step import MESH_AXES, make_eval_step, make_train_step
  if config is None:
    config = recipe_config(case, overrides, device_randaugment)
  if devices is None:
    mesh = builders.mesh_for(config, builders.check_config(config))
  else:
    mesh = jax.sharding.Mesh(np.array(devices).reshape(
        (len(devices),) + (1,) * (len(MESH_AXES) - 1)), MESH_AXES)
  info = DatasetInfo(num_classes=NUM_CLASSES, num_train_examples=1_281_167,
                     num_eval_examples=50_000, class_names=())
  run = builders.build_run(config, info, mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = synthetic_state(run.abstract_state, run.tx, replicated)
  batch = random_batch(mesh, case.batch_size, case.image_size, mask=case.mode != 'train',
                       uint8=case.mode == 'train' and run.prep.augment_on_device)
  if case.mode == 'train':
    (stage,) = run.stages  # fixed size: one stage with the config's own values
    step_cfg = builders.train_step_config(config, NUM_CLASSES, run.prep, stage)
    step = make_train_step(mesh, run.model, run.tx, run.learning_rate, step_cfg)
  else:
    step = make_eval_step(mesh, run.model)
  return run, mesh, state, batch, step


def timed_repeat(case: Case, run_steps: Callable[[int], None], steps: int
                 ) -> tuple[float, list[float]]:
  """One timed repeat: (its seconds per step, the single calls' seconds in latency mode, else
  []). Latency mode times ``steps`` single calls and gives their median."""
  if case.mode == 'latency':
    calls = single_calls(lambda: run_steps(1), steps)
    return statistics.median(calls), calls
  start = time.perf_counter()
  run_steps(steps)
  return (time.perf_counter() - start) / steps, []


def time_steps(case: Case, run_steps: Callable[[int], None], warmup: int, steps: int,
               repeats: int, between: Callable[[], None] | None = None
               ) -> tuple[float, float | None, list[float]]:
  """(seconds per step, 90th percentile or None, seconds of each repeat) of ``repeats``
  :func:`timed_repeat` after ``warmup`` steps; latency mode: the median and 90th percentile
  over every single call. ``between()``, where given, runs after each repeat, outside the
  timing (the other side of an interleaved pair)."""
  run_steps(warmup)
  times, calls = [], []
  for _ in range(repeats):
    seconds, single = timed_repeat(case, run_steps, steps)
    times.append(seconds)
    calls += single
    if between:
      between()
  return (*step_seconds(case, times, calls), times)


def step_seconds(case: Case, times: list[float], calls: list[float]) -> tuple[float, float | None]:
  """(seconds per step, 90th percentile or None) of timed repeats: the median repeat, or in
  latency mode the median and 90th percentile of every single call."""
  if case.mode == 'latency':
    return median_p90(calls)
  return statistics.median(times), None


class JaxSide:
  """effnet_jax's train step (``mode='train'``) or eval step (``'infer'``, ``'latency'``) of a
  case, compiled: ``run_steps(n)``, and :meth:`result` of the timing."""

  def __init__(self, case: Case, overrides: dict | None = None,
               device_randaugment: bool = False):
    self.case, self.overrides, self.device_randaugment = case, overrides, device_randaugment
    self.run, self.mesh, state, batch, step = build_case(case, overrides, device_randaugment)
    t0 = time.perf_counter()
    if case.mode == 'train':
      rng = jax.random.key(1)
      self.compiled = compiled = step.lower(state, batch, rng).compile()
      holder = [state]

      def run_steps(n):
        for _ in range(n):
          holder[0], metrics = compiled(holder[0], batch, rng)
        jax.block_until_ready(holder[0])
    else:
      variables = {'params': state.params, 'batch_stats': state.batch_stats}
      self.compiled = compiled = step.lower(variables, batch).compile()
      self.variables, self.batch = variables, batch

      def run_steps(n):
        jax.block_until_ready([compiled(variables, batch) for _ in range(n)])
    self.compile_s = time.perf_counter() - t0
    self.run_steps = run_steps
    self.times, self.calls = [], []

  def warm(self, warmup: int) -> None:
    self.run_steps(warmup)

  def repeat(self, steps: int) -> None:
    """One timed repeat (:func:`timed_repeat`), kept for :meth:`result`."""
    seconds, calls = timed_repeat(self.case, self.run_steps, steps)
    self.times.append(seconds)
    self.calls += calls

  def result(self, bandwidth: float | None = None, paired: bool = False) -> Result:
    """The :class:`Result` of the repeats so far (``paired``: with each repeat's time)."""
    case, mesh = self.case, self.mesh
    seconds, p90 = step_seconds(case, self.times, self.calls)
    costed = self.compiled
    local = case.batch_size // mesh.size
    if case.mode != 'train' and forward_chunk(local, case.image_size, case.image_size,
                                              mesh.devices.flat[0].platform) < local:
      # a CPU eval step runs the model in chunks (a loop), whose body XLA's cost analysis
      # counts once: the figures come from the same step in one pass
      from effnet_jax.train.step import make_eval_step
      costed = make_eval_step(mesh, self.run.model, chunked=False).lower(
          self.variables, self.batch).compile()
    flops, bytes_accessed = cost_figures(costed.cost_analysis())
    device = jax.devices()[0]
    peak = device_peak_memory(device)
    source = 'device'
    if peak is None:
      peak, source = program_memory(self.compiled), 'xla'
    impl = 'effnet_jax' + ''.join(f' {k}={v}' for k, v in (self.overrides or {}).items())
    if self.device_randaugment:
      impl += ' +RandAugment in step'
    result = Result(case, impl, case.batch_size / seconds, seconds * 1e3, self.compile_s, peak,
                    source, flops, bytes_accessed, p90_ms=p90 and p90 * 1e3,
                    repeat_ms=[t * 1e3 for t in self.times] if paired else None)
    return with_rates(result, peak_bandwidth(device.device_kind, bandwidth))


def measure_jax(case: Case, overrides: dict | None = None, warmup: int = 3, steps: int = 10,
                repeats: int = 5, bandwidth: float | None = None,
                profile_dir: str | None = None, device_randaugment: bool = False) -> Result:
  """Times :class:`JaxSide` of a case; with ``profile_dir``, then traces ``steps`` more steps
  there (jax.profiler, Perfetto JSON too)."""
  side = JaxSide(case, overrides, device_randaugment)
  side.warm(warmup)
  for _ in range(repeats):
    side.repeat(steps)
  if profile_dir:
    with jax.profiler.trace(profile_dir, create_perfetto_trace=True):
      side.run_steps(steps)
  return side.result(bandwidth)


# Seconds between two sides' turns: the threads of the side that just ran (OpenMP's, XLA's)
# spin for a while before they sleep, which would slow the next side's short repeats.
INTERLEAVE_PAUSE_S = 0.25


def measure_interleaved(sides: list, warmup: int, steps: int, repeats: int,
                        pause: float = INTERLEAVE_PAUSE_S) -> None:
  """Warms each side up (``side.warm(warmup)``), then runs ``repeats`` rounds of one timed
  repeat of every side in turn (``side.repeat(steps)``), ``pause`` seconds apart: a slow spell
  of the machine falls on every side of a round."""
  for side in sides:
    side.warm(warmup)
  for _ in range(repeats):
    for side in sides:
      time.sleep(pause)
      side.repeat(steps)


# ---- profiles ----

def op_kind(name: str) -> str:
  """An XLA op's kind: its name without the numeric suffix (``loop_add_fusion.12``)."""
  return re.sub(r'(\.\d+)+$', '', name)


def summarize_ops(events: list[dict], top: int = 15) -> list[tuple[str, float, float]]:
  """``(op kind, milliseconds, share)`` of the XLA ops in Chrome-trace ``events``, by total time.

  Python frames (``$file:line``), PjRt/runtime scopes and thunk-executor wrappers are left out:
  what remains is the time each compiled op ran (summed over threads)."""
  totals = collections.Counter()
  for event in events:
    name = event.get('name', '')
    if (event.get('ph') != 'X' or name.startswith('$') or ' ' in name or '::' in name
        or name.startswith(('PjitFunction', 'Pjit', 'jit_'))):
      continue
    totals[op_kind(name)] += event.get('dur', 0)
  total = sum(totals.values()) or 1
  return [(kind, us / 1e3, us / total) for kind, us in totals.most_common(top)]


def trace_events(profile_dir: str) -> list[dict]:
  """The events of the newest Perfetto trace under ``profile_dir``."""
  paths = sorted(glob.glob(os.path.join(profile_dir, '**', '*.trace.json.gz'), recursive=True),
                 key=os.path.getmtime)
  if not paths:
    raise FileNotFoundError(f'no *.trace.json.gz under {profile_dir}')
  with gzip.open(paths[-1], 'rt', encoding='utf-8') as f:
    trace = json.load(f)
  return trace['traceEvents'] if isinstance(trace, dict) else trace


def format_ops(rows: list[tuple[str, float, float]]) -> str:
  lines = ['| XLA op kind | ms (all threads) | share |', '| --- | --- | --- |']
  lines += [f'| {kind} | {ms:,.1f} | {100 * share:.1f} % |' for kind, ms, share in rows]
  return '\n'.join(lines)


# ---- timm ----

def timm_arch(model: str) -> str:
  """timm's name of a registered model: the PyTorch-native variant where timm has one."""
  import timm
  for name in (model, f'tf_{model}'):
    if timm.is_model(name):
      return name
  raise ValueError(f'timm has no model for {model!r} (tried {model}, tf_{model})')


def _timm_optimizer(torch_model, config: ml_collections.ConfigDict):
  from timm.optim import create_optimizer_v2
  o = config.optimizer
  lr = o.base_learning_rate * config.batch_size / o.lr_batch_base
  if o.name == 'rmsprop_tf':
    return create_optimizer_v2(torch_model, 'rmsproptf', lr=lr, weight_decay=o.weight_decay,
                               momentum=o.momentum, eps=o.eps, alpha=o.rms_decay)
  if o.name == 'sgd':
    return create_optimizer_v2(torch_model, 'nesterov' if o.nesterov else 'momentum', lr=lr,
                               weight_decay=o.weight_decay, momentum=o.momentum)
  return create_optimizer_v2(torch_model, o.name, lr=lr, weight_decay=o.weight_decay)


def measure_timm(case: Case, compile_train: bool = True, warmup: int = 3, steps: int = 10,
                 repeats: int = 5, interleaved: bool = False) -> Result:
  """Times timm's model of the same architecture on the same case (see the module doc).

  ``interleaved`` (the worker process of :class:`TimmWorker`): after the warm-up it prints
  ``ready``, then runs each timed repeat when a line arrives on stdin and prints ``done``
  after it."""
  import torch
  import timm
  from timm.utils import ModelEmaV3

  config = recipe_config(case)
  mcfg = get_model_config(config.model, **set_overrides(config))
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  if device.type == 'cpu':
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
  autocast_dtype = torch.bfloat16 if case.dtype == 'bf16' and device.type == 'cuda' else None
  model = timm.create_model(timm_arch(case.model), pretrained=False, num_classes=NUM_CLASSES,
                            drop_rate=mcfg.dropout_rate, drop_path_rate=mcfg.drop_path_rate)
  model = model.to(device, memory_format=torch.channels_last)
  images = torch.randn(case.batch_size, 3, case.image_size, case.image_size, device=device
                       ).contiguous(memory_format=torch.channels_last)
  labels = torch.randint(0, NUM_CLASSES, (case.batch_size,), device=device)
  autocast = lambda: torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                    enabled=autocast_dtype is not None)
  note = ''
  if case.mode == 'train':
    model.train()
    optimizer = _timm_optimizer(model, config)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.augment.label_smoothing)
    ema = ModelEmaV3(model, decay=config.ema_decay) if config.ema_decay else None
    forward = model
    mode = 'eager'
    if compile_train:
      forward, mode = torch.compile(model), 'compiled'

    def step():
      with autocast():
        loss = loss_fn(forward(images), labels)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      if ema is not None:
        ema.update(model)
  else:
    model.eval()
    mode = 'eager'

    def step():
      with torch.inference_mode(), autocast():
        model(images)

  def sync():
    if device.type == 'cuda':
      torch.cuda.synchronize()

  t0 = time.perf_counter()
  try:
    step()
  except Exception as error:  # noqa: BLE001  (inductor needs a compiler toolchain, ...)
    if mode != 'compiled':
      raise
    forward, mode = model, 'eager'
    note = f'torch.compile failed ({type(error).__name__}): eager'
    step()
  sync()
  compile_s = time.perf_counter() - t0
  if device.type == 'cuda':
    torch.cuda.reset_peak_memory_stats()

  def run_steps(n):
    for _ in range(n):
      step()
    sync()

  def handshake():  # interleaved: our turn is over; wait for the next one
    print('done', flush=True)
    sys.stdin.readline()

  if interleaved:
    run_steps(warmup)
    warmup = 0
    print('ready', flush=True)
    sys.stdin.readline()
  seconds, p90, times = time_steps(case, run_steps, warmup, steps, repeats,
                                   handshake if interleaved else None)
  peak = float(torch.cuda.max_memory_allocated()) if device.type == 'cuda' else None
  return Result(case, f'timm {timm_arch(case.model)} ({mode})', case.batch_size / seconds,
                seconds * 1e3, compile_s, peak, 'torch' if peak else '', note=note,
                p90_ms=p90 and p90 * 1e3,
                repeat_ms=[t * 1e3 for t in times] if interleaved else None)


_WORKER_FLAG = '--timm_worker'


def _worker_command(case: Case, compile_train: bool, **request) -> list[str]:
  """The command line of a timm worker process (:func:`measure_timm` with ``request``)."""
  return [sys.executable, '-m', 'effnet_jax.tools.benchmark', _WORKER_FLAG,
          json.dumps({'case': dataclasses.asdict(case), 'compile_train': compile_train,
                      **request})]


_WORKER_ENV = dict(TF_CPP_MIN_LOG_LEVEL='3')


def _worker_result(stdout: str) -> Result | None:
  """The :class:`Result` a worker printed last, or None where it printed nothing."""
  lines = stdout.strip().splitlines()
  if not lines:
    return None
  fields = json.loads(lines[-1])
  return Result(**dict(fields, case=Case(**fields['case'])))


def measure_timm_in_subprocess(case: Case, compile_train: bool = True, **timing) -> Result:
  """:func:`measure_timm` in a fresh process: PyTorch (its Triton) and TensorFlow (loaded for
  our side) bring clashing LLVM builds, and the two frameworks' thread pools stay apart."""
  done = subprocess.run(_worker_command(case, compile_train, **timing), capture_output=True,
                        text=True, env=dict(os.environ, **_WORKER_ENV), check=False)
  result = None if done.returncode else _worker_result(done.stdout)
  if result is None:
    raise RuntimeError(f'the timm measurement failed (exit {done.returncode}):\n'
                       f'{done.stderr[-3000:]}')
  return result


class TimmWorker:
  """timm's measurement of a case in a worker process that stays up, a side of
  :func:`measure_interleaved` (``--interleave``): it warms up before it starts; ``repeat()``
  runs one of its timed repeats (of the ``steps`` it was given) and returns when it is done;
  ``result()`` ends the worker and returns its :class:`Result`."""

  def __init__(self, case: Case, compile_train: bool = True, **timing):
    import tempfile
    self._stderr = tempfile.TemporaryFile(mode='w+')  # a file: a full pipe would block it
    self._proc = subprocess.Popen(
        _worker_command(case, compile_train, interleaved=True, **timing),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        env=dict(os.environ, **_WORKER_ENV))
    self._expect('ready')

  def _failed(self) -> RuntimeError:
    self._proc.kill()
    code = self._proc.wait()
    self._stderr.seek(0)
    return RuntimeError(f'the timm measurement failed (exit {code}):\n'
                        f'{self._stderr.read()[-3000:]}')

  def _expect(self, word: str) -> None:
    for line in self._proc.stdout:
      if line.strip() == word:
        return
    raise self._failed()

  def warm(self, warmup: int) -> None:
    pass  # done before 'ready'

  def repeat(self, steps: int = 0) -> None:
    try:
      self._proc.stdin.write('go\n')
      self._proc.stdin.flush()
    except BrokenPipeError:
      raise self._failed() from None
    self._expect('done')

  def result(self, bandwidth: float | None = None, paired: bool = True) -> Result:
    self._proc.stdin.close()
    result = _worker_result(self._proc.stdout.read())
    if self._proc.wait() or result is None:
      raise self._failed()
    return result


def _timm_worker(request: str) -> int:
  r = json.loads(request)
  result = measure_timm(Case(**r.pop('case')), **r)
  print(json.dumps(dataclasses.asdict(result)))
  return 0


# ---- output ----

def _si(value: float | None, unit: str) -> str:
  if value is None:
    return '-'
  for scale, prefix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if abs(value) >= scale:
      return f'{value / scale:.2f} {prefix}{unit}'
  return f'{value:.0f} {unit}'


COLUMNS = ('model', 'mode', 'batch', 'px', 'dtype', 'implementation', 'img/s', 'vs timm',
           'step ms', 'p90 ms', 'compile s', 'peak mem', 'FLOP/step', 'bytes/step', 'FLOP/s',
           'of BW')


def table_rows(results: list[Result]) -> list[tuple[str, ...]]:
  """One row per result; ``vs timm`` is ours / timm's images/s for the same case, or where
  the two were interleaved (``repeat_ms`` on both) :func:`paired_ratio`."""
  timm = {r.case: r for r in results if r.impl.startswith('timm')}
  rows = []
  for r in results:
    c = r.case
    ratio = ''
    if c in timm and not r.impl.startswith('timm'):
      paired = r.repeat_ms and timm[c].repeat_ms
      ratio = (f'{paired_ratio(r.repeat_ms, timm[c].repeat_ms):.2f}x paired' if paired else
               f'{r.images_per_sec / timm[c].images_per_sec:.2f}x')
    memory = _si(r.peak_memory_bytes, 'B')
    if r.memory_source == 'xla':
      memory = '~' + memory
    rows.append((c.model, c.mode, str(c.batch_size), str(c.image_size), c.dtype,
                 r.impl + (f' [{r.note}]' if r.note else ''), f'{r.images_per_sec:,.1f}',
                 ratio, f'{r.step_ms:.2f}', '-' if r.p90_ms is None else f'{r.p90_ms:.2f}',
                 f'{r.compile_s:.1f}', memory,
                 _si(r.flops_per_step, ''), _si(r.bytes_per_step, 'B'),
                 _si(r.achieved_flops, 'FLOP/s'),
                 f'{100 * r.bandwidth_fraction:.0f} %' if r.bandwidth_fraction else '-'))
  return rows


def format_table(results: list[Result]) -> str:
  """A markdown table of the results."""
  rows = [COLUMNS] + table_rows(results)
  widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
  line = lambda row: '| ' + ' | '.join(v.ljust(w) for v, w in zip(row, widths)) + ' |'
  return '\n'.join([line(rows[0]), '|' + '|'.join('-' * (w + 2) for w in widths) + '|'] +
                   [line(row) for row in rows[1:]])


def machine_description() -> str:
  devices = jax.devices()
  return (f'{len(devices)} x {devices[0].device_kind} ({devices[0].platform}), '
          f'{len(os.sched_getaffinity(0))} of {os.cpu_count()} host cores, jax {jax.__version__}')


def to_json(results: list[Result]) -> list[dict]:
  return [dict(dataclasses.asdict(r), **dataclasses.asdict(r.case)) for r in results]


def _parse_overrides(items: list[str]) -> dict:
  out = {}
  for item in items:
    key, sep, value = item.partition('=')
    if not sep:
      raise ValueError(f'--override {item!r}: expected KEY=VALUE')
    try:
      out[key] = json.loads(value)
    except json.JSONDecodeError:
      out[key] = value
  return out


def parse_case(text: str, dtype: str) -> Case:
  """``MODEL:MODE:BATCH:SIZE`` (``efficientnet_b0:train:256:224``) as a :class:`Case`."""
  parts = text.split(':')
  if len(parts) != 4 or parts[1] not in MODES or not all(p.isdigit() and int(p) > 0
                                                          for p in parts[2:]):
    raise ValueError(f'--case {text!r}: expected MODEL:MODE:BATCH:SIZE with MODE one of '
                     f'{MODES} and positive BATCH and SIZE, e.g. efficientnet_b0:train:256:224')
  get_model_config(parts[0])  # an unknown model is a ValueError naming the registered ones
  return Case(parts[0], parts[1], int(parts[2]), int(parts[3]), dtype)


def _changes_architecture(model: str, overrides: dict) -> bool:
  registered, changed = get_model_config(model), get_model_config(model, **overrides)
  shape = lambda c: (c.resolved_arch(), c.resolved_stem_channels(), c.resolved_head_channels())
  return shape(registered) != shape(changed)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == [_WORKER_FLAG]:
    return _timm_worker(argv[1])
  parser = cli.ArgumentParser('effnet_jax.tools.benchmark', description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='efficientnet_b0')
  parser.add_argument('--mode', choices=MODES, nargs='+', default=['train'])
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--image_size', type=int, default=224)
  parser.add_argument('--dtype', choices=sorted(DTYPES), default='bf16')
  parser.add_argument('--suite', action='store_true',
                      help='B0@224 bs256, V2-S@300 bs128, ReXNet-1.0@224 bs256, B4@380 bs64; '
                           'train and infer (ignores --model/--mode/--batch_size/--image_size)')
  parser.add_argument('--case', action='append', default=[], metavar='MODEL:MODE:BATCH:SIZE',
                      help='a case to measure, e.g. efficientnet_b0:train:256:224 (repeatable; '
                      'replaces --model/--mode/--batch_size/--image_size)')
  parser.add_argument('--vs_timm', action='store_true', help='measure timm in the same run')
  parser.add_argument('--interleave', action='store_true',
                      help='alternate the timed repeats of everything measured for a case (the '
                      'variants, timm in a worker that stays up) and compare them by the median '
                      'of the paired ratios: robust to a machine whose speed drifts (a shared '
                      'CPU). For CPUs: on a GPU both processes would hold its memory at once')
  parser.add_argument('--timm_compile', action=argparse.BooleanOptionalAction, default=True,
                      help='torch.compile timm\'s train step (default; eager where it fails)')
  parser.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                      help='model override, e.g. depthwise_impl=xla (repeatable)')
  parser.add_argument('--compare_depthwise', action='store_true',
                      help='also measure every depthwise_impl (xla, unrolled)')
  parser.add_argument('--device_randaugment', action='store_true',
                      help='train rows also with RandAugment (N=2) and normalization inside the '
                      'train step on uint8 batches (augment.augment_on_device): its cost there')
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--steps', type=int, default=10, help='steps per timed repeat')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--peak_bandwidth', type=float, default=None,
                      help='device memory bandwidth in GB/s (default: a table of accelerators)')
  parser.add_argument('--compilation_cache', metavar='DIR',
                      help="JAX's persistent compilation cache (a second run loads its programs)")
  parser.add_argument('--json', help='write the results to this JSON file')
  parser.add_argument('--profile', metavar='DIR',
                      help='trace --steps more steps of each effnet_jax case into DIR '
                           '(jax.profiler; TensorBoard/Perfetto) and print the top XLA ops')
  args = parser.parse_args(argv)
  for name in ('batch_size', 'image_size', 'steps', 'repeats'):
    if getattr(args, name) < 1:
      parser.error(f'--{name} must be >= 1')
  try:
    overrides = _parse_overrides(args.override)
    listed = [parse_case(text, args.dtype) for text in args.case]
    if args.suite:
      cases = suite(args.dtype)
    elif listed:
      cases = listed
    else:
      cases = [Case(args.model, mode, args.batch_size, args.image_size, args.dtype)
               for mode in args.mode]
    for model in sorted({c.model for c in cases}):
      get_model_config(model, **overrides)
  except ValueError as error:
    parser.error(str(error))
  if args.interleave and args.profile:
    parser.error('--interleave and --profile: profile in a run of its own')
  if args.vs_timm:
    cli.require_extra(parser.program, 'timm', '--vs_timm')
  if args.vs_timm and any(_changes_architecture(m, overrides) for m in {c.model for c in cases}):
    parser.error('--vs_timm compares the registered architecture: drop the --override that '
                 'changes it (keep e.g. depthwise_impl)')
  for case in cases:
    if case.batch_size % jax.device_count():
      parser.error(f'batch size {case.batch_size} ({case.model}) is not a multiple of the '
                   f'{jax.device_count()} devices')
  variants = [overrides]
  if args.compare_depthwise:
    variants = [dict(overrides, depthwise_impl=impl) for impl in ('xla', 'unrolled')]
  variants = [(v, False) for v in variants]
  if args.device_randaugment:
    variants += [(v, True) for v, _ in variants]
  bandwidth = args.peak_bandwidth * 1e9 if args.peak_bandwidth else None
  timing = dict(warmup=args.warmup, steps=args.steps, repeats=args.repeats)
  if args.compilation_cache:
    from effnet_jax.train.builders import enable_compilation_cache
    enable_compilation_cache(args.compilation_cache)
  print(f'# {machine_description()}', flush=True)
  results = []
  for case in cases:
    case_variants = [(v, ra) for v, ra in variants if not ra or case.mode == 'train']
    if args.interleave:
      sides = [JaxSide(case, v, ra) for v, ra in case_variants]
      if args.vs_timm:
        sides.append(TimmWorker(case, args.timm_compile, **timing))
      measure_interleaved(sides, **timing)
      case_results = [side.result(bandwidth, paired=True) for side in sides]
      for r in case_results[1:len(case_variants)]:
        r.note = (f'{paired_ratio(case_results[0].repeat_ms, r.repeat_ms):.2f}x the time of '
                  f'{case_results[0].impl}, paired')
      results += case_results
      print('\n'.join(format_table(case_results).splitlines()[2:]), flush=True)
      continue
    for variant, device_randaugment in case_variants:
      profile_dir = (os.path.join(args.profile, f'{case.model}_{case.mode}_{len(results)}')
                     if args.profile else None)
      results.append(measure_jax(case, variant, bandwidth=bandwidth, profile_dir=profile_dir,
                                 device_randaugment=device_randaugment, **timing))
      print(format_table(results[-1:]).splitlines()[-1], flush=True)
      if profile_dir:
        print(f'trace in {profile_dir}; XLA ops of {args.steps} steps:\n' +
              format_ops(summarize_ops(trace_events(profile_dir))), flush=True)
    if args.vs_timm:
      results.append(measure_timm_in_subprocess(case, args.timm_compile, **timing))
      print(format_table(results[-1:]).splitlines()[-1], flush=True)
  print()
  print(format_table(results))
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump({'machine': machine_description(), 'command': sys.argv,
                 'results': to_json(results)}, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
