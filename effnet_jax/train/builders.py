"""Builders: a config turned into the objects a run needs, before any array exists.

config -> model config and module, preprocessing, curriculum stages and run plan, optimizer,
abstract train state, mesh, and the lowered train/eval steps. Training (``loop.py``),
evaluation (``evaluation.py``), the benchmark and the ablation tools all build through these
functions, so a run's model, input and step are the same wherever it is built.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax import data as data_lib
from effnet_jax.checkpoints import RunRecord
from effnet_jax.config import AUGMENT_FIELDS, set_overrides
from effnet_jax.models import ModelConfig, build_model, get_model_config
from effnet_jax.train import curriculum as curriculum_lib
from effnet_jax.train import optim
from effnet_jax.train.step import (BATCH_SPEC, TrainState, TrainStepConfig, bn_axis_name,
                                   make_eval_step, make_mesh, make_train_step,
                                   resolve_bn_group_size)


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
  total = (config.num_train_steps if config.num_train_steps is not None
           else int(math.ceil(config.num_epochs * steps_per_epoch)))
  eval_every = int(round(config.eval_every_epochs * steps_per_epoch)) if config.eval_every_epochs else 0
  return RunPlan(global_batch_size=config.batch_size,
                 eval_batch_size=config.eval_batch_size or config.batch_size,
                 steps_per_epoch=steps_per_epoch, total_steps=total,
                 eval_every_steps=max(eval_every, 0))


def data_config(config: ml_collections.ConfigDict) -> data_lib.DataConfig:
  return data_lib.DataConfig(**config.data.to_dict())


def compute_dtype(config: ml_collections.ConfigDict) -> str:
  """``config.dtype``, or (unset) bfloat16 on an accelerator and float32 on a CPU, where
  bfloat16 runs several times slower."""
  if config.dtype:
    return config.dtype
  return 'float32' if jax.default_backend() == 'cpu' else 'bfloat16'


def model_config(config: ml_collections.ConfigDict, num_classes: int,
                 bn_axis: str | None = None) -> ModelConfig:
  """The run's ``ModelConfig``: the registered model with the config's overrides, and the
  config's train and eval image sizes where it sets them (the sizes a model is built for matter
  to Swin, whose windows follow from its image size; a workdir is read back with them too)."""
  sizes = {key: config.input[key] for key in ('image_size', 'eval_image_size')
           if config.input[key] is not None}
  return get_model_config(config.model, num_classes=num_classes, dtype=compute_dtype(config),
                          bn_axis_name=bn_axis, **sizes, **set_overrides(config))


def preprocessing(config: ml_collections.ConfigDict, mcfg: ModelConfig) -> data_lib.Preprocessing:
  """Input preprocessing: the config's ``input`` section (an unset entry takes the model's
  metadata: its train and eval image sizes, eval crop, interpolation, mean and std) and the host
  side of its ``augment`` section."""
  model = dict(image_size=mcfg.image_size, eval_image_size=mcfg.eval_image_size,
               crop_fraction=mcfg.crop_fraction, crop_mode=mcfg.crop_mode,
               interpolation=mcfg.interpolation, mean=mcfg.mean, std=mcfg.std)
  values = {k: model[k] if v is None else v for k, v in config.input.to_dict().items()}
  values.update({k: config.augment[k] for k in AUGMENT_FIELDS})
  return data_lib.Preprocessing(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in values.items()})


def check_config(config: ml_collections.ConfigDict) -> ModelConfig:
  """The config's own errors (model name, overrides, augmentation), raised before any data
  work, which can take minutes (the embedded data set is prepared on first use)."""
  mcfg = model_config(config, num_classes=1)
  preprocessing(config, mcfg)
  return mcfg


def mesh_for(config: ml_collections.ConfigDict, mcfg: ModelConfig) -> jax.sharding.Mesh:
  """The ('data', 'bn') mesh over every device, with the config's BN groups (unset: the model
  family's official grouping)."""
  return make_mesh(resolve_bn_group_size(config.bn_group_size, jax.device_count(), mcfg.family))


def create_optimizer(config: ml_collections.ConfigDict, plan: RunPlan, params, stages=None):
  """``(tx, learning_rate)``; with curriculum ``stages`` of their own batch sizes the schedule
  runs on in epochs and is scaled by stage batch / config batch (the per-256 rule)."""
  o = optim.OptimizerConfig(**config.optimizer.to_dict())
  s = optim.ScheduleConfig(**config.schedule.to_dict())
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
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})  # {}: a model without BatchNorm (Swin)
  copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), ema_params=copy(params) if ema else None,
                    ema_batch_stats=copy(batch_stats) if ema else None)


@dataclasses.dataclass
class Run:
  """What a config builds before any array exists."""
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
      curriculum_lib.CurriculumConfig(**config.curriculum.to_dict()),
      total_steps=plan.total_steps, batch_size=plan.global_batch_size,
      image_size=prep.image_size, randaug_magnitude=config.augment.randaug_magnitude,
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


def run_record(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo,
               prep: data_lib.Preprocessing) -> RunRecord:
  """The run description saved beside every checkpoint: what a resumed run must match and
  what a reader needs to rebuild the model and its input."""
  return RunRecord(model=config.model, model_overrides=set_overrides(config),
                   num_classes=info.num_classes, class_names=list(info.class_names),
                   image_size=prep.image_size, eval_image_size=prep.eval_image_size,
                   config=json.loads(config.to_json()))


def train_step_config(config: ml_collections.ConfigDict, num_classes: int,
                      prep: data_lib.Preprocessing, stage: curriculum_lib.Stage,
                      image_size: int | None = None) -> TrainStepConfig:
  """The train step's static settings for ``stage`` (its mixing strengths, and with
  ``prep.augment_on_device`` its RandAugment magnitude and the normalization), trained at
  ``image_size`` (None: the stage's own; another size resizes the batch in the step)."""
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
      image_size=image_size if image_size != stage.image_size else None, **device)


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


def lower_train_step(config: ml_collections.ConfigDict, run: Run, mesh,
                     stage: curriculum_lib.Stage, image_size: int, rng) -> jax.stages.Lowered:
  """The train step of ``stage`` at ``image_size``, traced and lowered for the run's state and
  batches (``.compile()`` it)."""
  stage_model = build_model(dataclasses.replace(run.mcfg, dropout_rate=stage.dropout_rate))
  step_cfg = train_step_config(config, run.mcfg.num_classes, run.prep, stage, image_size)
  jitted = make_train_step(mesh, stage_model, run.tx, run.learning_rate, step_cfg)
  dtype = jnp.uint8 if run.prep.augment_on_device else jnp.float32
  return jitted.lower(run.abstract_state,
                      abstract_batch(mesh, stage.batch_size, stage.image_size, dtype=dtype), rng)


def lower_eval_step(run: Run, mesh, batch_size: int | None = None,
                    image_size: int | None = None) -> jax.stages.Lowered:
  """The eval step, traced and lowered for the run's weights and eval batches (by default the
  run's eval batch size and image size; ``effnet_jax.evaluate`` gives others)."""
  variables = {'params': run.abstract_state.params, 'batch_stats': run.abstract_state.batch_stats}
  return lower_model_eval_step(run.model, variables, mesh,
                               batch_size or run.plan.eval_batch_size,
                               image_size or run.prep.eval_image_size)


def lower_model_eval_step(model, variables, mesh, batch_size: int,
                          image_size: int) -> jax.stages.Lowered:
  """The eval step of ``model``, traced and lowered for ``variables`` (arrays or their shapes)
  and eval batches of ``batch_size`` images of ``image_size`` px."""
  return make_eval_step(mesh, model).lower(variables, abstract_batch(mesh, batch_size,
                                                                     image_size, True))


def compile_rarely(fn, *args, out_shardings=None):
  """``jax.jit(fn)`` compiled for ``args``, for a program that runs once or rarely (the
  initialization). On the CPU it is compiled at LLVM -O1 instead of XLA's default -O3:
  initializing a network compiles one random-number kernel per parameter, which optimizes for
  little gain (docs/performance.md has the measurement); the bits are the same
  (tests/train/test_loop.py checks). Other backends compile as usual."""
  options = {'xla_backend_optimization_level': 1} if jax.default_backend() == 'cpu' else None
  jitted = jax.jit(fn) if out_shardings is None else jax.jit(fn, out_shardings=out_shardings)
  return jitted.lower(*args).compile(compiler_options=options)


def compile_init(config: ml_collections.ConfigDict, run: Run, mesh):
  """The program that initializes a fresh train state (replicated over the mesh)."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return compile_rarely(lambda: init_state(run.model, run.tx, run.prep.image_size, config.seed,
                                           bool(config.ema_decay)), out_shardings=replicated)


def stage_image_sizes(stages, stage: curriculum_lib.Stage, mix: bool) -> list[int]:
  """The image sizes ``stage`` trains at: its own, or with ``bucket_mix`` every size so far."""
  return (curriculum_lib.bucket_sizes(stages[:stage.index + 1]) if mix and stage.index
          else [stage.image_size])


def image_size_at(stages, stage: curriculum_lib.Stage, step: int, seed: int, mix: bool) -> int:
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
