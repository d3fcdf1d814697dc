"""Progressive learning (EfficientNetV2): train in stages of growing image size and regularization.

A curriculum is a list of :class:`Stage` s computed once from the config. Each stage has its own
image size (a compilation bucket), RandAugment magnitude, Mixup/CutMix alpha, dropout and
(optionally) batch size; the optimizer state, EMA and learning-rate schedule run on across stages.
The stage of a step is a pure function of the step, so a resumed run continues in the right stage.

Two value schedules (docs/reference.md, 'Official training recipes', EfficientNetV2):

* ``code`` (default; google/automl as released): stage k of M (k = 0..M-1) ends at
  ``int((k + 1) / M * total_steps)``; image size ``int(ibase + (size - ibase) * (k + 1) / M)`` (the
  first stage is already a quarter of the way up); RandAugment magnitude and Mixup/CutMix alpha
  ``linspace(min, max, M)[k]``; dropout constant.
* ``paper`` (EfficientNetV2 paper, Table 6): every value ``v_min + (v_max - v_min) * k / (M - 1)``
  — the first stage at the minimum image size — and dropout ramped too.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax.numpy as jnp
import ml_collections

SCHEDULES = ('code', 'paper')


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
  """The ``curriculum`` config section. None: inherit the fixed-size run's value."""
  num_stages: int = 0  # <= 1: fixed size (official V2: 4)
  schedule: str = 'code'  # code (google/automl as released) | paper (EfficientNetV2 Table 6)
  min_image_size: int = 128  # the official ibase
  max_image_size: int | None = None  # None: input.image_size (the final train size)
  image_sizes: tuple[int, ...] | None = None  # explicit per-stage sizes (win over the formula)
  size_multiple: int = 0  # snap stage sizes to a multiple (16, 32) so they form buckets; 0: exact
  # Per-stage global batch sizes; the learning rate follows the per-256 rule and the schedule
  # runs on in epochs. None: batch_size in every stage.
  batch_sizes: tuple[int, ...] | None = None
  randaug_magnitude_min: float = 5.0
  randaug_magnitude_max: float | None = None  # None: augment.randaug_magnitude
  mixup_alpha_min: float = 0.0  # also CutMix's minimum
  mixup_alpha_max: float | None = None  # None: augment.mixup_alpha
  cutmix_alpha_max: float | None = None  # None: augment.cutmix_alpha
  dropout_min: float | None = None  # schedule=paper ramps dropout from here (paper: 0.1)
  dropout_max: float | None = None  # None: the model's dropout_rate
  bucket_mix: bool = False  # each step trains a random stage size up to the current one
  aot_compile: bool = True  # compile every bucket's step at start (else lazily, once per bucket)


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of the curriculum: steps ``[start_step, end_step)``."""
  index: int
  start_step: int
  end_step: int
  image_size: int
  batch_size: int
  randaug_magnitude: float
  mixup_alpha: float
  cutmix_alpha: float
  dropout_rate: float
  # Where the stage starts in "reference steps" of the config's global batch (what the learning
  # rate schedule is a function of) and in examples seen (where the data stream continues).
  start_reference_step: float = 0.0
  start_position: int = 0

  @property
  def num_steps(self) -> int:
    return self.end_step - self.start_step


def _sizes(values, name: str) -> list[int]:
  """A tuple of sizes from the config (None: not given)."""
  if values is None:
    return []
  if isinstance(values, str) or not all(isinstance(v, int) and v > 0 for v in values):
    raise ValueError(f'curriculum.{name}={values!r}: expected a tuple of positive integers, '
                     f'e.g. (128, 192, 256)')
  return list(values)


def _inherit(value, fallback):
  return fallback if value is None else value


def _snap(size: float, multiple: int) -> int:
  size = int(size)
  if multiple > 1:
    size = max(multiple, int(round(size / multiple)) * multiple)
  return size


def _ramp(lo: float, hi: float, num_stages: int) -> list[float]:
  """``linspace(lo, hi, M)`` (both schedules interpolate regularization this way)."""
  if num_stages == 1:
    return [float(hi)]
  return [lo + (hi - lo) * k / (num_stages - 1) for k in range(num_stages)]


def stage_image_sizes(num_stages: int, min_size: int, max_size: int, schedule: str,
                      multiple: int = 0) -> list[int]:
  """Image size of every stage (before an explicit list overrides it)."""
  if schedule == 'code':
    sizes = [min_size + (max_size - min_size) * (k + 1) / num_stages for k in range(num_stages)]
  else:
    sizes = _ramp(min_size, max_size, num_stages)
  return [_snap(s, multiple) for s in sizes]


def build_stages(curriculum: CurriculumConfig | ml_collections.ConfigDict, *, total_steps: int,
                 batch_size: int, image_size: int, randaug_magnitude: float, mixup_alpha: float,
                 cutmix_alpha: float, dropout_rate: float) -> list[Stage]:
  """The stages of ``config.curriculum`` (one stage at the fixed settings when it is off).

  ``image_size``, ``randaug_magnitude``, ``mixup_alpha``, ``cutmix_alpha`` and ``dropout_rate``
  are the final-stage (maximum) values: the recipe's fixed-size settings.
  """
  c = curriculum
  if c.schedule not in SCHEDULES:
    raise ValueError(f'curriculum.schedule={c.schedule!r}: expected one of {SCHEDULES}')
  num = int(c.num_stages)
  if num <= 1:
    return [Stage(0, 0, total_steps, image_size, batch_size, randaug_magnitude, mixup_alpha,
                  cutmix_alpha, dropout_rate)]
  if total_steps < num:
    raise ValueError(f'{num} curriculum stages need at least {num} steps, not {total_steps}')
  sizes = _sizes(c.image_sizes, 'image_sizes')
  if sizes:
    if len(sizes) != num:
      raise ValueError(f'curriculum.image_sizes has {len(sizes)} sizes for {num} stages')
    sizes = [_snap(s, c.size_multiple) for s in sizes]
  else:
    max_size = _inherit(c.max_image_size, image_size)
    if not 0 < c.min_image_size <= max_size:
      raise ValueError(f'curriculum.min_image_size={c.min_image_size} must be in '
                       f'(0, {max_size}] (the final train size)')
    sizes = stage_image_sizes(num, c.min_image_size, max_size, c.schedule, c.size_multiple)
  batches = _sizes(c.batch_sizes, 'batch_sizes') or [batch_size] * num
  if len(batches) != num:
    raise ValueError(f'curriculum.batch_sizes={c.batch_sizes!r}: expected {num} sizes')
  ra_max = _inherit(c.randaug_magnitude_max, randaug_magnitude)
  magnitudes = _ramp(c.randaug_magnitude_min, ra_max, num)
  mix_max = _inherit(c.mixup_alpha_max, mixup_alpha)
  cut_max = _inherit(c.cutmix_alpha_max, cutmix_alpha)
  mixups = _ramp(c.mixup_alpha_min, mix_max, num)
  cutmixes = _ramp(c.mixup_alpha_min if cut_max else 0.0, cut_max, num)
  drop_max = _inherit(c.dropout_max, dropout_rate)
  if c.schedule == 'paper' and c.dropout_min is not None:
    dropouts = _ramp(c.dropout_min, drop_max, num)
  else:  # the released code computes a dropout ramp and then discards it
    dropouts = [drop_max] * num

  # Stage k covers an equal share of the run's images (of its epochs); with the config's batch
  # that is the official int((k + 1) / M * total_steps) boundary.
  stages, step, position, ref = [], 0, 0, 0.0
  for k in range(num):
    end_ref = int((k + 1) / num * total_steps)
    images = (end_ref - int(k / num * total_steps)) * batch_size
    steps = max(1, int(round(images / batches[k])))
    stages.append(Stage(k, step, step + steps, sizes[k], batches[k], round(magnitudes[k], 4),
                        round(mixups[k], 4), round(cutmixes[k], 4), round(dropouts[k], 4),
                        start_reference_step=ref, start_position=position))
    step += steps
    position += steps * batches[k]
    ref += steps * batches[k] / batch_size
  return stages


def stage_at(stages: Sequence[Stage], step: int) -> Stage:
  """The stage that trains step ``step`` (the last one past the end)."""
  for stage in stages:
    if step < stage.end_step:
      return stage
  return stages[-1]


def reference_step_fn(stages: Sequence[Stage], batch_size: int) -> Callable:
  """Optimizer update count -> position in the config-batch schedule (identity when every stage
  uses the config's batch size), and the learning-rate factor of the stage's batch."""
  if all(s.batch_size == batch_size for s in stages):
    return None
  starts = jnp.array([s.start_step for s in stages])
  refs = jnp.array([s.start_reference_step for s in stages])
  ratios = jnp.array([s.batch_size / batch_size for s in stages])

  def fn(count):
    k = jnp.sum(count >= starts) - 1
    return refs[k] + (count - starts[k]) * ratios[k], ratios[k]
  return fn


def rescale_schedule(schedule: Callable, stages: Sequence[Stage], batch_size: int) -> Callable:
  """The learning rate of a curriculum with per-stage batch sizes: the config's schedule at the
  stage's reference position, times stage batch / config batch (the per-256 scaling rule)."""
  fn = reference_step_fn(stages, batch_size)
  if fn is None:
    return schedule

  def learning_rate(count):
    ref, ratio = fn(count)
    return schedule(ref) * ratio
  return learning_rate


def total_steps(stages: Sequence[Stage]) -> int:
  return stages[-1].end_step


def bucket_sizes(stages: Sequence[Stage]) -> list[int]:
  return sorted({s.image_size for s in stages})


def format_table(stages: Sequence[Stage], batch_size: int, steps_per_epoch: float) -> str:
  """The schedule as a text table (printed at start; ``batch_size``: the config's)."""
  rows = [('stage', 'steps', 'epochs', 'image', 'batch', 'RandAug M', 'mixup', 'cutmix',
           'dropout')]
  for s in stages:
    start = s.start_reference_step / steps_per_epoch
    end = (s.start_reference_step + s.num_steps * s.batch_size / batch_size) / steps_per_epoch
    rows.append((str(s.index + 1), f'{s.start_step}-{s.end_step}', f'{start:.1f}-{end:.1f}',
                 str(s.image_size), str(s.batch_size), f'{s.randaug_magnitude:g}',
                 f'{s.mixup_alpha:g}', f'{s.cutmix_alpha:g}', f'{s.dropout_rate:g}'))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return '\n'.join('  '.join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)
