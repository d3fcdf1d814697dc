"""The training loop: config -> data -> device batches -> train step -> metrics/checkpoints.

The same code path runs on a laptop CPU, one GPU and a multi-host TPU pod: the global batch is
assembled from per-process slices, the step is sharded over every device, logging and summaries
come from process 0, checkpoints are collective.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax import data as data_lib
from effnet_jax.config import set_overrides
from effnet_jax.distributed import all_processes, barrier
from effnet_jax.models import ModelConfig, build_model, get_model_config
from effnet_jax.train import curriculum as curriculum_lib
from effnet_jax.train import finetune as finetune_lib
from effnet_jax.train import optim
from effnet_jax.train.metrics import (MetricsError, MetricWriter, ProgressBar, eval_scores,
                                      format_duration)
from effnet_jax.train.preemption import PreemptionNotice
from effnet_jax.train.step import (BATCH_SPEC, TrainState, TrainStepConfig, bn_axis_name,
                                   global_batch, make_eval_step, make_mesh, make_train_step,
                                   resolve_bn_group_size)

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM


class Preempted(SystemExit):
  """Raised after the checkpoint on SIGTERM has been written."""

  def __init__(self, step: int):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """Sizes derived once from the config and the data set."""
  global_batch_size: int
  eval_batch_size: int
  steps_per_epoch: float
  total_steps: int
  eval_every_steps: int


def make_plan(config: ml_collections.ConfigDict, num_train_examples: int) -> RunPlan:
  steps_per_epoch = num_train_examples / config.batch_size
  total = config.num_train_steps or int(math.ceil(config.num_epochs * steps_per_epoch))
  eval_every = int(round(config.eval_every_epochs * steps_per_epoch)) if config.eval_every_epochs else 0
  return RunPlan(global_batch_size=config.batch_size,
                 eval_batch_size=config.eval_batch_size or config.batch_size,
                 steps_per_epoch=steps_per_epoch, total_steps=total,
                 eval_every_steps=max(eval_every, 0))


def model_config(config: ml_collections.ConfigDict, num_classes: int,
                 bn_axis: str | None) -> ModelConfig:
  return get_model_config(config.model, num_classes=num_classes, dtype=config.dtype,
                          bn_axis_name=bn_axis, **set_overrides(config))


def preprocessing(config: ml_collections.ConfigDict, mcfg: ModelConfig) -> data_lib.Preprocessing:
  """Input preprocessing from the model's metadata and the config's augmentation settings."""
  augment = {k: v for k, v in config.augment.to_dict().items()
             if k not in ('mixup_alpha', 'cutmix_alpha', 'label_smoothing')}
  augment = {k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()}
  return data_lib.Preprocessing(
      image_size=config.image_size or mcfg.train_size,
      eval_size=config.eval_image_size or mcfg.eval_size, crop_fraction=mcfg.crop_fraction,
      crop_mode=mcfg.crop_mode, interpolation=mcfg.interpolation, mean=tuple(mcfg.mean),
      std=tuple(mcfg.std), **augment)


def create_optimizer(config: ml_collections.ConfigDict, plan: RunPlan, params, stages=None):
  """``(tx, learning_rate)``; with curriculum ``stages`` of their own batch sizes the schedule
  runs on in epochs and is scaled by stage batch / config batch (the per-256 rule)."""
  o, s = config.optimizer, config.schedule
  learning_rate = optim.learning_rate_schedule(
      s.name, o.base_learning_rate, plan.global_batch_size, plan.steps_per_epoch,
      plan.total_steps, warmup_epochs=s.warmup_epochs, decay_epochs=s.decay_epochs,
      decay_rate=s.decay_rate, min_learning_rate=s.min_learning_rate,
      warmup_init=s.warmup_init, lr_batch_base=o.lr_batch_base)
  if stages:
    learning_rate = curriculum_lib.rescale_schedule(learning_rate, stages,
                                                    plan.global_batch_size)
  tx = optim.create_optimizer(
      o.name, learning_rate, momentum=o.momentum, nesterov=o.nesterov, rms_decay=o.rms_decay,
      eps=o.eps, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
      weight_decay_mode=o.weight_decay_mode, weight_decay_exclude=o.weight_decay_exclude,
      lars_trust_coefficient=o.lars_trust_coefficient, grad_clip_norm=o.grad_clip_norm,
      params=params)
  return tx, learning_rate


def init_state(model, tx, image_size: int, seed: int, ema: bool) -> TrainState:
  """A fresh train state (jit-able; the same on every process for the same seed)."""
  variables = model.init(jax.random.key(seed), jnp.zeros((1, image_size, image_size, 3)),
                         train=False)
  params, batch_stats = variables['params'], variables['batch_stats']
  copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), ema_params=copy(params) if ema else None,
                    ema_batch_stats=copy(batch_stats) if ema else None)


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
    changes = ckpt_lib.check_same_run(ckpt_lib.read_run(manager, step), run_info, allow_changes,
                                      f'{workdir} (checkpoint step {step})')
    return ckpt_lib.restore(manager, step, abstract_state), changes
  step, (state, changes) = ckpt_lib.restore_intact(manager, restore_step, move_bad=True,
                                                   agree=all_processes)
  return step, state, changes


def check_eval_data(info: data_lib.DatasetInfo, data_config: data_lib.DataConfig,
                    first_batch) -> None:
  """Fails before the first step where the evaluation at the end would: no eval split, or one
  whose first batch does not read."""
  if not info.num_eval_examples:
    where = ('data.eval_folder is not set' if data_config.source == 'folder'
             else f'the eval split {data_config.eval_split!r} is empty')
    raise data_lib.DataError(f'no eval examples: {where}. The run evaluates at its end (and '
                             'every eval_every_epochs); give it labelled images of the same '
                             'classes to evaluate on.')
  next(first_batch())


def compile_rarely(fn, *args, out_shardings=None):
  """``jax.jit(fn)`` compiled for ``args``, for a program that runs once or rarely (the
  initialization). On the CPU it is compiled at LLVM -O1 instead of XLA's default -O3:
  initializing a network compiles one random-number kernel per parameter, which at -O3 took
  12-15 s of a small training run (EfficientNet-B0 phi=-12) and at -O1 takes 5 s, for the same
  bits (tests/train/test_loop.py checks). Other backends compile as usual."""
  options = {'xla_backend_optimization_level': 1} if jax.default_backend() == 'cpu' else None
  jitted = jax.jit(fn) if out_shardings is None else jax.jit(fn, out_shardings=out_shardings)
  return jitted.lower(*args).compile(compiler_options=options)


def _all_finite(tree) -> bool:
  """Whether every element of ``tree`` is finite, read on the host from this process's shards
  (one per distinct index: a replicated array is read once). No program is compiled, which a
  device-side check would cost per model (2 s on a 2-core CPU for a tiny network, paid by every
  run's first save). The train state is replicated, so every process reaches the same answer."""
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


@dataclasses.dataclass
class Run:
  """What a config builds before any array exists (shared by training and ``evaluate``)."""
  mcfg: ModelConfig
  model: Any
  prep: data_lib.Preprocessing
  stages: list
  plan: RunPlan  # total_steps: the curriculum's
  tx: Any
  learning_rate: Any
  abstract_state: TrainState  # ShapeDtypeStructs, replicated over the mesh


def build_run(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo, mesh) -> Run:
  plan = make_plan(config, info.num_train_examples)
  mcfg = model_config(config, info.num_classes, bn_axis_name(mesh))
  model = build_model(mcfg)
  prep = preprocessing(config, mcfg)
  stages = curriculum_lib.build_stages(
      config.curriculum, total_steps=plan.total_steps, batch_size=plan.global_batch_size,
      train_size=prep.image_size, randaug_magnitude=config.augment.randaug_magnitude,
      mixup_alpha=config.augment.mixup_alpha, cutmix_alpha=config.augment.cutmix_alpha,
      dropout_rate=mcfg.dropout_rate)
  for stage in stages:
    if stage.batch_size % mesh.size:  # (then also a multiple of the process count)
      raise ValueError(f'batch size {stage.batch_size} (stage {stage.index + 1}) is not a '
                       f'multiple of the device count {mesh.size}')
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, prep.image_size, prep.image_size, 3)), train=False))
  tx, learning_rate = create_optimizer(config, plan, abstract['params'], stages)
  plan = dataclasses.replace(plan, total_steps=curriculum_lib.total_steps(stages))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abstract_state = jax.eval_shape(
      lambda: init_state(model, tx, prep.image_size, config.seed, bool(config.ema_decay)))
  abstract_state = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract_state)
  return Run(mcfg, model, prep, stages, plan, tx, learning_rate, abstract_state)


def train_step_config(config: ml_collections.ConfigDict, num_classes: int,
                      prep: data_lib.Preprocessing, stage: curriculum_lib.Stage,
                      bucket: int = 0) -> TrainStepConfig:
  """The train step's static settings for ``stage`` (its mixing strengths, and with
  ``prep.augment_on_device`` its RandAugment magnitude and the normalization), trained at image
  size ``bucket`` (0: the stage's own)."""
  device = {}
  if prep.augment_on_device:  # uint8 batches: RandAugment and normalization in the step
    device = dict(mean=tuple(prep.mean), std=tuple(prep.std))
    if prep.augment == 'randaugment':
      device.update(randaug_num_layers=prep.randaug_num_layers,
                    randaug_magnitude=float(stage.randaug_magnitude))
  return TrainStepConfig(
      num_classes=num_classes, label_smoothing=config.augment.label_smoothing,
      mixup_alpha=stage.mixup_alpha, cutmix_alpha=stage.cutmix_alpha,
      ema_decay=config.ema_decay, ema_warmup=config.ema_warmup,
      resize_to=bucket if bucket and bucket != stage.image_size else 0, **device)


def abstract_batch(mesh, batch_size: int, image_size: int, eval_mode: bool = False,
                   dtype=jnp.float32):
  """The global batch's shapes and shardings, for compiling a step ahead of its first batch."""
  sharding = jax.sharding.NamedSharding(mesh, BATCH_SPEC)
  batch = {'images': jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), dtype,
                                          sharding=sharding),
           'labels': jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharding)}
  if eval_mode:
    batch['mask'] = jax.ShapeDtypeStruct((batch_size,), jnp.float32, sharding=sharding)
  return batch


def lower_train_step(config: ml_collections.ConfigDict, run: Run, num_classes: int, mesh,
                     stage: curriculum_lib.Stage, bucket: int, rng) -> jax.stages.Lowered:
  """The train step of ``stage`` at image size ``bucket``, traced and lowered for the run's
  state and batches (``.compile()`` it)."""
  stage_model = build_model(dataclasses.replace(run.mcfg, dropout_rate=stage.dropout_rate))
  step_cfg = train_step_config(config, num_classes, run.prep, stage, bucket)
  jitted = make_train_step(mesh, stage_model, run.tx, run.learning_rate, step_cfg)
  dtype = jnp.uint8 if run.prep.augment_on_device else jnp.float32
  return jitted.lower(run.abstract_state,
                      abstract_batch(mesh, stage.batch_size, stage.image_size, dtype=dtype), rng)


def lower_eval_step(run: Run, mesh, batch_size: int = 0, image_size: int = 0
                    ) -> jax.stages.Lowered:
  """The eval step, traced and lowered for the run's weights and eval batches (by default the
  run's eval batch size and image size; ``effnet_jax.evaluate`` gives others)."""
  variables = {'params': run.abstract_state.params, 'batch_stats': run.abstract_state.batch_stats}
  return make_eval_step(mesh, run.model).lower(variables, abstract_batch(
      mesh, batch_size or run.plan.eval_batch_size, image_size or run.prep.eval_size, True))


def compile_init(config: ml_collections.ConfigDict, run: Run, mesh):
  """The program that initializes a fresh train state (replicated over the mesh)."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return compile_rarely(lambda: init_state(run.model, run.tx, run.prep.image_size, config.seed,
                                           bool(config.ema_decay)), out_shardings=replicated)


def stage_buckets(stages, stage: curriculum_lib.Stage, mix: bool) -> list[int]:
  """The image sizes ``stage`` trains at: its own, or with ``bucket_mix`` every size so far."""
  return (curriculum_lib.bucket_sizes(stages[:stage.index + 1]) if mix and stage.index
          else [stage.image_size])


def bucket_at(stages, stage: curriculum_lib.Stage, step: int, seed: int, mix: bool) -> int:
  """The image size step ``step`` trains at: the stage's, or with ``bucket_mix`` a random one of
  the stage sizes so far — drawn from (seed, step), so every host picks the same."""
  if not mix or stage.index == 0:
    return stage.image_size
  sizes = curriculum_lib.bucket_sizes(stages[:stage.index + 1])
  return sizes[int(np.random.default_rng([seed, step]).integers(len(sizes)))]


def enable_compilation_cache(directory: str) -> None:
  """Persistent XLA compilation cache (a restart with the same programs skips compiling)."""
  if directory:
    jax.config.update('jax_compilation_cache_dir', directory)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_changes: Sequence[str] = ()) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates.

  A resumed run must have the checkpoint's run description (data, classes, model, schedule,
  ...); ``allow_changes`` names the config keys (or sections, or 'all') that may differ.
  Returns the final metrics (``eval/top1``, ``eval_ema/top1``, ... and ``wall_seconds``).
  """
  start_time = time.time()
  is_main = jax.process_index() == 0
  enable_compilation_cache(config.compilation_cache_dir)
  # The config's own errors (model name, overrides, augmentation) before any data work, which
  # can take minutes (the embedded data set is prepared on first use).
  checked = model_config(config, num_classes=1, bn_axis=None)
  preprocessing(config, checked)
  family = checked.family
  data_config = data_lib.DataConfig(**config.data.to_dict())
  info = data_lib.dataset_info(data_config)

  group = resolve_bn_group_size(config.bn_group_size, jax.device_count(), family)
  mesh = make_mesh(group)
  run = build_run(config, info, mesh)
  mcfg, prep, stages, tx, abstract_state = (
      run.mcfg, run.prep, run.stages, run.tx, run.abstract_state)
  plan, total_steps = run.plan, run.plan.total_steps
  ema = bool(config.ema_decay)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def eval_batches():
    return data_lib.eval_iterator(data_config, prep, plan.eval_batch_size,
                                  jax.process_index(), jax.process_count())

  check_eval_data(info, data_config, eval_batches)
  writer = MetricWriter(workdir, enabled=is_main, tensorboard=config.tensorboard)
  barrier('start')  # the checkpoint manager's set-up is the first collective
  best_scores = eval_scores(workdir)  # the evaluations so far: which checkpoint is the best
  manager = ckpt_lib.create_manager(workdir, keep=config.keep_checkpoints,
                                    best_scores=best_scores, async_save=config.async_checkpoints)
  with finishing_saves(manager):
    run_info = ckpt_lib.RunRecord(
        model=config.model, model_overrides=set_overrides(config),
        num_classes=info.num_classes, class_names=list(info.class_names),
        image_size=prep.image_size, eval_image_size=prep.eval_size,
        config=json.loads(config.to_json()))
    if ckpt_lib.finished_steps(str(manager.directory)):
      latest, state, changes = restore_latest(manager, abstract_state, run_info, allow_changes,
                                              workdir)
      _log(f'resumed from {manager.directory} step {latest}' +
           (f', with changes to {", ".join(changes)} (allowed)' if changes else ''))
      if changes:
        writer.write(None, {}, event='resumed_with_changes', resumed_step=latest, keys=changes)
    else:
      state = compile_init(config, run, mesh)()
      if config.init_from:
        state = start_from(state, config.init_from, mcfg, tx, replicated, writer)
    start_step = int(jax.device_get(state.step))

    params = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(state.params))
    _log(f'{config.model}: {params:,} params, {info.num_classes} classes; '
         f'{jax.device_count()} devices ({jax.devices()[0].platform}), '
         f'{jax.process_count()} processes, BN groups of {group}; '
         f'global batch {plan.global_batch_size}, {plan.total_steps} steps '
         f'({plan.total_steps / plan.steps_per_epoch:.2f} epochs), train {prep.image_size} px, '
         f'eval {prep.eval_size} px')
    if len(stages) > 1:
      _log(f'progressive learning, {len(stages)} stages (schedule {config.curriculum.schedule}'
           f'{", bucket mix" if config.curriculum.bucket_mix else ""}):\n' +
           curriculum_lib.format_table(stages, plan.global_batch_size, plan.steps_per_epoch))

    rng = jax.random.key(config.seed + 1)
    programs: dict[tuple, Any] = {}  # (stage settings, bucket) -> compiled train step

    def program_key(stage: curriculum_lib.Stage, bucket: int) -> tuple:
      return (stage.image_size, bucket, stage.batch_size, stage.dropout_rate, stage.mixup_alpha,
              stage.cutmix_alpha, stage.randaug_magnitude if prep.augment_on_device else None)

    def train_program(stage: curriculum_lib.Stage, bucket: int):
      """The stage's train step at image size ``bucket``, compiled exactly once (and logged)."""
      key = program_key(stage, bucket)
      if key not in programs:
        t0 = time.time()
        programs[key] = lower_train_step(config, run, info.num_classes, mesh, stage, bucket,
                                         rng).compile()
        barrier(f'compiled/train/{len(programs)}')  # the processes compile at their own pace
        writer.write(None, {}, event='compile', fn='train_step', image_size=bucket,
                     batch_size=stage.batch_size, stage=stage.index + 1,
                     seconds=round(time.time() - t0, 3))
      return programs[key]

    eval_programs: dict[int, Any] = {}

    def eval_program():
      if not eval_programs:
        t0 = time.time()
        eval_programs[0] = lower_eval_step(run, mesh).compile()
        barrier('compiled/eval')
        writer.write(None, {}, event='compile', fn='eval_step', image_size=prep.eval_size,
                     batch_size=plan.eval_batch_size, seconds=round(time.time() - t0, 3))
      return eval_programs[0]

    def run_eval(step: int) -> dict[str, float]:
      results = {}
      targets = [('eval', {'params': state.params, 'batch_stats': state.batch_stats})]
      if ema:
        targets.append(('eval_ema', {'params': state.ema_params,
                                     'batch_stats': state.ema_batch_stats}))
      compiled_eval = eval_program()
      for prefix, variables in targets:
        batches = eval_batches()
        barrier(f'eval/{step}/{prefix}')  # opening a folder with on_bad_image='skip' decodes it
        for k, v in evaluate(compiled_eval, variables, batches, mesh).items():
          results[f'{prefix}/{k}'] = v
      best_scores[step] = results['eval/top1']  # (kept by the next save's retention)
      writer.write(step, results)
      _log(f'step {step}: ' + ', '.join(f'{k} {v:.4f}' for k, v in results.items()
                                         if k.endswith(('top1', 'top5', 'loss'))))
      return results

    def save(step: int, force=False):
      """Saves ``state`` unless its parameters have diverged: a checkpoint is always one to
      restart from (the loss is only checked at log steps)."""
      if not _all_finite(state.params):
        ckpt_lib.wait_until_finished(manager)
        raise FloatingPointError(f'the parameters are not finite after step {step}; stopping '
                                 f'without saving. {_last_good(manager)}')
      ckpt_lib.save(manager, step, state, run_info, force=force)

    def stage_batches(stage: curriculum_lib.Stage, step: int):
      """The stage's input pipeline, continuing the example stream where step ``step`` is."""
      position = stage.start_position + (step - stage.start_step) * stage.batch_size
      stage_prep = dataclasses.replace(prep, image_size=stage.image_size,
                                       randaug_magnitude=stage.randaug_magnitude)
      return data_lib.train_iterator(
          data_config, stage_prep, stage.batch_size, config.seed, start_position=position,
          process_index=jax.process_index(), process_count=jax.process_count())

    def report_skipped(skipped: tuple[str, ...]) -> None:
      """Unreadable train images left out (``data.on_bad_image='skip'``): counted in the metrics."""
      writer.write(None, {}, event='skipped_images', split='train', count=len(skipped),
                   files=list(skipped[:5]))
      _log(f'skipped {len(skipped)} unreadable train images (on_bad_image=skip), e.g. '
           f'{", ".join(skipped[:3])}')

    mix = bool(config.curriculum.bucket_mix) and len(stages) > 1
    if config.curriculum.aot_compile and start_step < total_steps:
      # Every remaining stage's programs now, in the same order on every host (a resumed run
      # does not compile the stages it has finished).
      t0 = time.time()
      for stage in stages[curriculum_lib.stage_at(stages, start_step).index:]:
        for bucket in stage_buckets(stages, stage, mix):
          train_program(stage, bucket)
      if len(programs) > 1:
        _log(f'compiled {len(programs)} train-step programs in {time.time() - t0:.1f} s')

    stage, train_batches = None, None
    progress = ProgressBar(plan.total_steps, plan.global_batch_size, start_step,
                           enabled=is_main and config.progress_bar)
    last_log_time, images_since_log = time.time(), 0
    with PreemptionNotice() as preemption:
      for step in range(start_step, plan.total_steps):
        current = curriculum_lib.stage_at(stages, step)
        if current is not stage:
          stage = current
          train_batches = stage_batches(stage, step)
          barrier(f'data/{step}')
          if step == start_step and train_batches.skipped_images:  # (every stage skips the same)
            report_skipped(train_batches.skipped_images)
          progress.batch_size = stage.batch_size
          if len(stages) > 1:
            _log(f'stage {stage.index + 1}/{len(stages)} from step {step}: image '
                 f'{stage.image_size} px, batch {stage.batch_size}, RandAugment '
                 f'{stage.randaug_magnitude:g}, mixup {stage.mixup_alpha:g}, cutmix '
                 f'{stage.cutmix_alpha:g}, dropout {stage.dropout_rate:g}')
        batch = global_batch(mesh, next(train_batches))
        bucket = bucket_at(stages, stage, step, config.seed, mix)
        if program_key(stage, bucket) not in programs:
          train_program(stage, bucket)
          progress.restart_clock(step)
          last_log_time, images_since_log = time.time(), 0
        state, metrics = programs[program_key(stage, bucket)](state, batch, rng)
        done = step + 1
        images_since_log += stage.batch_size
        if done % config.log_every_steps == 0 or done == plan.total_steps:
          metrics = jax.device_get(metrics)
          if not math.isfinite(float(metrics['loss'])):
            ckpt_lib.wait_until_finished(manager)
            raise FloatingPointError(f'loss is {metrics["loss"]} at step {done}; stopping '
                                     f'without saving. {_last_good(manager)}')
          now = time.time()
          rate = images_since_log / max(now - last_log_time, 1e-9)
          last_log_time, images_since_log = now, 0
          epoch = (stage.start_reference_step + (done - stage.start_step) * stage.batch_size /
                   plan.global_batch_size) / plan.steps_per_epoch
          extra = ({'train/image_size': bucket, 'train/stage': stage.index + 1}
                   if len(stages) > 1 else {})
          writer.write(done, {f'train/{k}': v for k, v in metrics.items()} |
                       {'train/images_per_sec': rate, 'train/epoch': epoch} | extra)
          progress.update(done, float(metrics['loss']), float(metrics['learning_rate']),
                          force=True)
        else:
          progress.update(done)
        # periodic evaluations, except within the last tenth of an interval (the final one
        # follows)
        is_eval = (plan.eval_every_steps and done % plan.eval_every_steps == 0
                   and plan.total_steps - done >= max(1, plan.eval_every_steps // 10))
        if is_eval:
          save(done)  # before evaluating: an evaluation that fails loses no training
          run_eval(done)
          progress.restart_clock(done)
          last_log_time, images_since_log = time.time(), 0
        elif done % config.checkpoint_every_steps == 0:
          save(done)
        if preemption.reached(done):
          if manager.latest_step() != done:  # (not saved just above)
            save(done, force=True)
          ckpt_lib.wait_until_finished(manager)
          _log(f'SIGTERM: saved step {done} to {manager.directory}; exiting')
          raise Preempted(done)
    progress.close()
    final_step = int(jax.device_get(state.step))
    if manager.latest_step() != final_step:
      save(final_step, force=True)
    results = run_eval(final_step)
    ckpt_lib.wait_until_finished(manager)
    results = dict(results, wall_seconds=round(time.time() - start_time, 1), step=final_step)
    writer.write(final_step, {k: v for k, v in results.items() if k != 'step'}, final=True)
    writer.close()
  manager.close()
  summary = ', '.join(f'{k} {v:.4f}' for k, v in results.items() if k.endswith('top1'))
  _log(f'final: step {final_step}, {summary}, wall time {format_duration(results["wall_seconds"])}')
  return results
