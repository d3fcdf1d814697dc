"""The training loop: build, restore, then for each curriculum stage: steps, log, save, evaluate.

The same code path runs on a laptop CPU, one GPU and a multi-host TPU pod: the global batch is
assembled from per-process slices, the step is sharded over every device, logging and summaries
come from process 0, checkpoints are collective. Everything the loop runs is built from the
config by ``builders.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax import data as data_lib
from effnet_jax.config import upgrade_layout
from effnet_jax.distributed import all_processes, barrier
from effnet_jax.models import ModelConfig
from effnet_jax.train import builders
from effnet_jax.train import curriculum as curriculum_lib
from effnet_jax.train import finetune as finetune_lib
from effnet_jax.train.evaluation import evaluate
from effnet_jax.train.metrics import (MetricsError, MetricWriter, ProgressBar, eval_scores,
                                      format_duration)
from effnet_jax.train.preemption import PreemptionNotice
from effnet_jax.train.step import TrainState, global_batch

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM


class Preempted(SystemExit):
  """Raised after the checkpoint on SIGTERM has been written."""

  def __init__(self, step: int):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_changes: Sequence[str] = ()) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates.

  A resumed run must have the checkpoint's run description (data, classes, model, schedule,
  ...); ``allow_changes`` names the config keys (or sections, or 'all') that may differ.
  Returns the final metrics (``eval/top1``, ``eval_ema/top1``, ... and ``wall_seconds``).
  """
  start_time = time.time()
  builders.enable_compilation_cache(config.compilation_cache_dir)
  mcfg = builders.check_config(config)  # before any data work, which can take minutes
  data_config = builders.data_config(config)
  info = data_lib.dataset_info(data_config)
  mesh = builders.mesh_for(config, mcfg)
  run = builders.build_run(config, info, mesh)
  check_eval_data(info, data_config, run)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0,
                        tensorboard=config.tensorboard)
  barrier('start')  # the checkpoint manager's set-up is the first collective
  best_scores = eval_scores(workdir)  # the evaluations so far: which checkpoint is the best
  manager = ckpt_lib.create_manager(workdir, keep=config.keep_checkpoints,
                                    best_scores=best_scores, async_save=config.async_checkpoints)
  with finishing_saves(manager):
    s = Session(config, run, mesh, data_config, writer, manager, best_scores,
                record=builders.run_record(config, info, run.prep),
                programs=Programs(config, run, mesh, writer))
    state = restore_or_start(s, allow_changes, workdir)
    start_step = int(jax.device_get(state.step))
    log_start(s, state, info)
    if config.curriculum.aot_compile:
      s.programs.compile_remaining(start_step)

    progress = ProgressBar(run.plan.total_steps, run.plan.global_batch_size, start_step,
                           enabled=jax.process_index() == 0 and config.progress_bar)
    throughput = Throughput()
    with PreemptionNotice() as preemption:
      for stage in run.stages[curriculum_lib.stage_at(run.stages, start_step).index:]:
        first = max(start_step, stage.start_step)
        if first >= stage.end_step:
          continue
        batches = open_stage(s, stage, first, report_skipped=first == start_step)
        progress.batch_size = stage.batch_size
        for step in range(first, stage.end_step):
          image_size = builders.image_size_at(run.stages, stage, step, config.seed,
                                              s.programs.mix)
          if not s.programs.has(stage, image_size):  # a lazily compiled program
            s.programs.train(stage, image_size)
            progress.restart_clock(step)
            throughput.restart()
          state, metrics = s.programs.train(stage, image_size)(
              state, global_batch(mesh, next(batches)), s.programs.rng)
          done = step + 1
          throughput.add(stage.batch_size)
          if done % config.log_every_steps == 0 or done == run.plan.total_steps:
            log_train(s, stage, done, image_size, metrics, throughput.rate(), progress)
          else:
            progress.update(done)
          if is_eval_step(run.plan, done):
            save(s, state, done)  # before evaluating: an evaluation that fails loses no training
            evaluate_state(s, state, done)
            progress.restart_clock(done)
            throughput.restart()
          elif done % config.checkpoint_every_steps == 0:
            save(s, state, done)
          if preemption.reached(done):
            save_and_exit(s, state, done)
    progress.close()
    final_step = int(jax.device_get(state.step))
    if manager.latest_step() != final_step:
      save(s, state, final_step, force=True)
    results = evaluate_state(s, state, final_step)
    ckpt_lib.wait_until_finished(manager)
    results = dict(results, wall_seconds=round(time.time() - start_time, 1), step=final_step)
    writer.write(final_step, {k: v for k, v in results.items() if k != 'step'}, final=True)
    writer.close()
  manager.close()
  summary = ', '.join(f'{k} {v:.4f}' for k, v in results.items() if k.endswith('top1'))
  _log(f'final: step {final_step}, {summary}, wall time {format_duration(results["wall_seconds"])}')
  return results


class Programs:
  """The compiled train steps (one per stage settings and image size) and the eval step, each
  compiled once, in the same order on every process, and logged as a ``compile`` event."""

  def __init__(self, config: ml_collections.ConfigDict, run: builders.Run, mesh,
               writer: MetricWriter):
    self.config, self.run, self.mesh, self.writer = config, run, mesh, writer
    self.rng = jax.random.key(config.seed + 1)
    self.mix = bool(config.curriculum.bucket_mix) and len(run.stages) > 1
    self._train: dict[tuple, Any] = {}
    self._eval = None

  def _key(self, stage: curriculum_lib.Stage, image_size: int) -> tuple:
    device_randaug = self.run.prep.augment_on_device
    return (stage.image_size, image_size, stage.batch_size, stage.dropout_rate,
            stage.mixup_alpha, stage.cutmix_alpha,
            stage.randaug_magnitude if device_randaug else None)

  def has(self, stage: curriculum_lib.Stage, image_size: int) -> bool:
    return self._key(stage, image_size) in self._train

  def train(self, stage: curriculum_lib.Stage, image_size: int):
    """The stage's train step at ``image_size``."""
    key = self._key(stage, image_size)
    if key not in self._train:
      t0 = time.time()
      self._train[key] = builders.lower_train_step(self.config, self.run, self.mesh, stage,
                                                   image_size, self.rng).compile()
      barrier(f'compiled/train/{len(self._train)}')  # the processes compile at their own pace
      self.writer.write(None, {}, event='compile', fn='train_step', image_size=image_size,
                        batch_size=stage.batch_size, stage=stage.index + 1,
                        seconds=round(time.time() - t0, 3))
    return self._train[key]

  def eval(self):
    if self._eval is None:
      t0 = time.time()
      self._eval = builders.lower_eval_step(self.run, self.mesh).compile()
      barrier('compiled/eval')
      self.writer.write(None, {}, event='compile', fn='eval_step',
                        image_size=self.run.prep.eval_image_size,
                        batch_size=self.run.plan.eval_batch_size,
                        seconds=round(time.time() - t0, 3))
    return self._eval

  def compile_remaining(self, start_step: int) -> None:
    """Every remaining stage's programs now (a resumed run skips the stages it finished)."""
    stages = self.run.stages
    if start_step >= self.run.plan.total_steps:
      return
    t0 = time.time()
    for stage in stages[curriculum_lib.stage_at(stages, start_step).index:]:
      for image_size in builders.stage_image_sizes(stages, stage, self.mix):
        self.train(stage, image_size)
    if len(self._train) > 1:
      _log(f'compiled {len(self._train)} train-step programs in {time.time() - t0:.1f} s')


@dataclasses.dataclass
class Session:
  """What the loop's steps share: the built run and where it writes."""
  config: ml_collections.ConfigDict
  run: builders.Run
  mesh: Any
  data_config: data_lib.DataConfig
  writer: MetricWriter
  manager: Any
  best_scores: dict[int, float]
  record: ckpt_lib.RunRecord
  programs: Programs


class Throughput:
  """Images per second since the last reading (restarted after a compilation or evaluation)."""

  def __init__(self):
    self.restart()

  def restart(self) -> None:
    self.since, self.images = time.time(), 0

  def add(self, images: int) -> None:
    self.images += images

  def rate(self) -> float:
    now = time.time()
    rate = self.images / max(now - self.since, 1e-9)
    self.since, self.images = now, 0
    return rate


def restore_or_start(s: Session, allow_changes: Sequence[str], workdir: str) -> TrainState:
  """The newest checkpoint that restores, or a fresh state (from ``config.init_from`` when
  given)."""
  if ckpt_lib.finished_steps(str(s.manager.directory)):
    latest, state, changes = restore_latest(s.manager, s.run.abstract_state, s.record,
                                            allow_changes, workdir)
    _log(f'resumed from {s.manager.directory} step {latest}' +
         (f', with changes to {", ".join(changes)} (allowed)' if changes else ''))
    if changes:
      s.writer.write(None, {}, event='resumed_with_changes', resumed_step=latest, keys=changes)
    return state
  state = builders.compile_init(s.config, s.run, s.mesh)()
  if s.config.init_from:
    replicated = jax.sharding.NamedSharding(s.mesh, jax.sharding.PartitionSpec())
    state = start_from(state, s.config.init_from, s.run.mcfg, s.run.tx, replicated, s.writer)
  return state


def log_start(s: Session, state: TrainState, info: data_lib.DatasetInfo) -> None:
  config, run, plan = s.config, s.run, s.run.plan
  params = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(state.params))
  _log(f'{config.model}: {params:,} params, {info.num_classes} classes; '
       f'{jax.device_count()} devices ({jax.devices()[0].platform}), '
       f'{jax.process_count()} processes, BN groups of {s.mesh.shape["bn"]}; '
       f'global batch {plan.global_batch_size}, {plan.total_steps} steps '
       f'({plan.total_steps / plan.steps_per_epoch:.2f} epochs), train {run.prep.image_size} px, '
       f'eval {run.prep.eval_image_size} px')
  if len(run.stages) > 1:
    _log(f'progressive learning, {len(run.stages)} stages (schedule {config.curriculum.schedule}'
         f'{", bucket mix" if config.curriculum.bucket_mix else ""}):\n' +
         curriculum_lib.format_table(run.stages, plan.global_batch_size, plan.steps_per_epoch))


def open_stage(s: Session, stage: curriculum_lib.Stage, step: int, report_skipped: bool):
  """The stage's input pipeline, continuing the example stream where step ``step`` is."""
  position = stage.start_position + (step - stage.start_step) * stage.batch_size
  stage_prep = dataclasses.replace(s.run.prep, image_size=stage.image_size,
                                   randaug_magnitude=stage.randaug_magnitude)
  batches = data_lib.train_iterator(
      s.data_config, stage_prep, stage.batch_size, s.config.seed, start_position=position,
      process_index=jax.process_index(), process_count=jax.process_count())
  barrier(f'data/{step}')
  skipped = batches.skipped_images
  if report_skipped and skipped:  # (every stage skips the same images: reported once)
    s.writer.write(None, {}, event='skipped_images', split='train', count=len(skipped),
                   files=list(skipped[:5]))
    _log(f'skipped {len(skipped)} unreadable train images (on_bad_image=skip), e.g. '
         f'{", ".join(skipped[:3])}')
  if len(s.run.stages) > 1:
    _log(f'stage {stage.index + 1}/{len(s.run.stages)} from step {step}: image '
         f'{stage.image_size} px, batch {stage.batch_size}, RandAugment '
         f'{stage.randaug_magnitude:g}, mixup {stage.mixup_alpha:g}, cutmix '
         f'{stage.cutmix_alpha:g}, dropout {stage.dropout_rate:g}')
  return batches


def log_train(s: Session, stage: curriculum_lib.Stage, done: int, image_size: int, metrics,
              images_per_sec: float, progress: ProgressBar) -> None:
  """Writes the train metrics of step ``done``; a non-finite loss stops the run unsaved."""
  metrics = jax.device_get(metrics)
  if not math.isfinite(float(metrics['loss'])):
    ckpt_lib.wait_until_finished(s.manager)
    raise FloatingPointError(f'loss is {metrics["loss"]} at step {done}; stopping '
                             f'without saving. {_last_good(s.manager)}')
  plan = s.run.plan
  epoch = (stage.start_reference_step + (done - stage.start_step) * stage.batch_size /
           plan.global_batch_size) / plan.steps_per_epoch
  extra = ({'train/image_size': image_size, 'train/stage': stage.index + 1}
           if len(s.run.stages) > 1 else {})
  s.writer.write(done, {f'train/{k}': v for k, v in metrics.items()} |
                 {'train/images_per_sec': images_per_sec, 'train/epoch': epoch} | extra)
  progress.update(done, float(metrics['loss']), float(metrics['learning_rate']), force=True)


def is_eval_step(plan: builders.RunPlan, done: int) -> bool:
  """A periodic evaluation, except within the last tenth of an interval (the final one
  follows)."""
  return bool(plan.eval_every_steps and done % plan.eval_every_steps == 0
              and plan.total_steps - done >= max(1, plan.eval_every_steps // 10))


def evaluate_state(s: Session, state: TrainState, step: int) -> dict[str, float]:
  """Evaluates the weights (and the EMA weights) of ``state`` and logs the result."""
  results = {}
  targets = [('eval', {'params': state.params, 'batch_stats': state.batch_stats})]
  if state.ema_params is not None:
    targets.append(('eval_ema', {'params': state.ema_params,
                                 'batch_stats': state.ema_batch_stats}))
  eval_step = s.programs.eval()
  for prefix, variables in targets:
    batches = eval_batches(s.data_config, s.run)
    barrier(f'eval/{step}/{prefix}')  # opening a folder with on_bad_image='skip' decodes it
    for k, v in evaluate(eval_step, variables, batches, s.mesh).items():
      results[f'{prefix}/{k}'] = v
  s.best_scores[step] = results['eval/top1']  # (kept by the next save's retention)
  s.writer.write(step, results)
  _log(f'step {step}: ' + ', '.join(f'{k} {v:.4f}' for k, v in results.items()
                                     if k.endswith(('top1', 'top5', 'loss'))))
  return results


def eval_batches(data_config: data_lib.DataConfig, run: builders.Run):
  return data_lib.eval_iterator(data_config, run.prep, run.plan.eval_batch_size,
                                jax.process_index(), jax.process_count())


def save(s: Session, state: TrainState, step: int, force: bool = False) -> None:
  """Saves ``state`` unless its parameters have diverged: a checkpoint is always one to
  restart from (the loss is only checked at log steps)."""
  if not _all_finite(state.params):
    ckpt_lib.wait_until_finished(s.manager)
    raise FloatingPointError(f'the parameters are not finite after step {step}; stopping '
                             f'without saving. {_last_good(s.manager)}')
  ckpt_lib.save(s.manager, step, state, s.record, force=force)


def save_and_exit(s: Session, state: TrainState, step: int) -> None:
  """On SIGTERM: the checkpoint of ``step`` (unless just saved), then exit 143."""
  if s.manager.latest_step() != step:
    save(s, state, step, force=True)
  ckpt_lib.wait_until_finished(s.manager)
  _log(f'SIGTERM: saved step {step} to {s.manager.directory}; exiting')
  raise Preempted(step)


def check_eval_data(info: data_lib.DatasetInfo, data_config: data_lib.DataConfig,
                    run: builders.Run) -> None:
  """Fails before the first step where the evaluation at the end would: no eval split, or one
  whose first batch does not read."""
  if not info.num_eval_examples:
    where = ('data.eval_folder is not set' if data_config.source == 'folder'
             else f'the eval split {data_config.eval_split!r} is empty')
    raise data_lib.DataError(f'no eval examples: {where}. The run evaluates at its end (and '
                             'every eval_every_epochs); give it labelled images of the same '
                             'classes to evaluate on.')
  next(iter(eval_batches(data_config, run)))


def start_from(state: TrainState, path: str, mcfg: ModelConfig, tx, sharding,
               writer: MetricWriter) -> TrainState:
  """A fresh ``state`` with the weights of ``path`` (``config.init_from``: fine-tuning)."""
  fresh = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  variables, reinitialised, weights = finetune_lib.load_initial_variables(path, mcfg, fresh)
  state = jax.jit(lambda s, v: finetune_lib.with_weights(s, v, tx), out_shardings=sharding)(
      state, jax.device_put(variables, sharding))
  loaded = len(jax.tree_util.tree_leaves(variables)) - len(reinitialised)
  _log(f'init_from {path}: {loaded} arrays of {weights.name} ({weights.num_classes} classes)' +
       (f'; re-initialised for {mcfg.num_classes} classes: {", ".join(reinitialised)}'
        if reinitialised else ''))
  writer.write(None, {}, event='init_from', path=path, reinitialised=reinitialised)
  return state


def _last_good(manager) -> str:
  latest = manager.latest_step()
  if latest is None:
    return f'There is no checkpoint in {manager.directory} yet.'
  return f'The last good checkpoint is step {latest} in {manager.directory}.'


@contextlib.contextmanager
def finishing_saves(manager):
  """On an error inside, the save in flight is finished before the error leaves (what was
  trained up to it is kept); a metrics write error is reported with the checkpoint to go on
  from."""
  try:
    yield
  except BaseException as error:
    try:
      ckpt_lib.wait_until_finished(manager)
    except ckpt_lib.CheckpointError:
      pass  # the error inside comes first; the latest complete checkpoint is still intact
    if isinstance(error, MetricsError):
      raise MetricsError(f'{error}. {_last_good(manager)} Rerunning the same command resumes '
                         'from it once the storage takes writes again.') from error
    raise


def restore_latest(manager, abstract_state: TrainState, run_info: ckpt_lib.RunRecord,
                   allow_changes: Sequence[str], workdir: str) -> tuple[int, TrainState, list]:
  """``(step, state, allowed changes)`` of the newest checkpoint that restores (a step that
  does not is reported and moved aside), after checking that it is this config's run."""
  def restore_step(step: int):
    saved = ckpt_lib.read_run(manager, step)
    saved = dataclasses.replace(saved, config=upgrade_layout(saved.config))  # (earlier layout)
    changes = ckpt_lib.check_same_run(saved, run_info, allow_changes,
                                      f'{workdir} (checkpoint step {step})')
    return ckpt_lib.restore(manager, step, abstract_state), changes
  step, (state, changes) = ckpt_lib.restore_intact(manager, restore_step, move_bad=True,
                                                   agree=all_processes)
  return step, state, changes




def _all_finite(tree) -> bool:
  """Whether every element of ``tree`` is finite, read on the host from this process's shards
  (one per distinct index: a replicated array is read once). No program is compiled: a
  device-side check would compile one per model, paid by every run's first save. The train state
  is replicated, so every process reaches the same answer."""
  for leaf in jax.tree_util.tree_leaves(tree):
    if not isinstance(leaf, jax.Array):
      if not np.isfinite(np.asarray(leaf)).all():
        return False
      continue
    seen = set()
    for shard in leaf.addressable_shards:
      index = str(shard.index)
      if index in seen:
        continue
      seen.add(index)
      if not np.isfinite(np.asarray(shard.data)).all():
        return False
  return True


def _log(message: str) -> None:
  if jax.process_index() == 0:
    print(message, flush=True)
