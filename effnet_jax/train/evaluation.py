"""Evaluation: one pass of the eval step over a data set (used by the trainer), a restored
training run at several test resolutions, and any weights on any labelled data (the library side
of ``python -m effnet_jax.evaluate``; importable without defining any command-line flags)."""
from __future__ import annotations

import dataclasses
import difflib
import time
from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax import data as data_lib
from effnet_jax.config import upgrade_layout
from effnet_jax.distributed import all_processes, barrier
from effnet_jax.train import builders
from effnet_jax.train.metrics import ProgressBar, eval_scores
from effnet_jax.train.step import global_batch, make_mesh

DEFAULT_BATCH_SIZE = 64  # weights on data: images per step over every device (rounded up)
EVAL_SPLITS = ('validation', 'test')  # the TFDS split evaluated by default: the first one there
_CLOSEST = 3  # valid class names shown beside one that is not


def evaluate(eval_step, variables, batches, mesh,
             progress: Callable[[int], None] | None = None) -> dict[str, float]:
  """Top-1/top-5/loss over one pass of ``batches`` (masked sums, so padding never counts);
  ``progress(batches done)`` after each batch."""
  totals = None
  for done, batch in enumerate(batches, start=1):
    sums = eval_step(variables, global_batch(mesh, batch))
    totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    if progress is not None:
      progress(done)
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


def output_class_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
  """The name of each output of the weights, as data sets name their classes: the weights' own
  class names, else for an ImageNet-1k model the WordNet ids (``n01440764`` ...: the class folders
  of the usual validation layout, TFDS imagenet2012's label names), after the background class
  for 1001 outputs (TF-slim layout)."""
  from effnet_jax.predict import BACKGROUND, imagenet_wnids
  if class_names:
    return list(class_names)
  if num_classes == 1000:
    return imagenet_wnids()
  if num_classes == 1001:
    return [BACKGROUND] + imagenet_wnids()
  raise ValueError(f'the weights name none of their {num_classes} classes, so the data\'s '
                   'classes cannot be matched to them (save the weights with class_names, or '
                   'convert them with --class_names)')


def class_outputs(data_classes: Sequence[str], outputs: Sequence[str], where: str = 'the data',
                  what: str = 'class') -> np.ndarray:
  """The output index of each class of the data (int32, in the data's class order): matched by
  name; any subset of the outputs. DataError naming the classes of the data (``where``: its
  ``what``, e.g. ``'class sub-folder'``) that are no output, with the closest output names."""
  index = {}
  for i, name in enumerate(outputs):
    index.setdefault(name, i)
  missing = [name for name in data_classes if name not in index]
  if missing:
    closest = difflib.get_close_matches(missing[0], list(index), n=_CLOSEST, cutoff=0.0)
    shown = ', '.join(map(repr, missing[:5])) + (f' and {len(missing) - 5} more'
                                                if len(missing) > 5 else '')
    verb = 'is not a class' if len(missing) == 1 else 'are not classes'
    raise data_lib.DataError(
        f'{where}: {what}{"s" if len(missing) > 1 else ""} {shown} {verb} of the weights '
        f'(closest to {missing[0]!r}: {", ".join(map(repr, closest))})')
  return np.array([index[name] for name in data_classes], np.int32)


def tfds_data(name: str, split: str | None = None, data_dir: str | None = None
              ) -> data_lib.DataConfig:
  """The eval ``split`` (default: the first of :data:`EVAL_SPLITS` there is) of TFDS data set
  ``name`` (``fashion_mnist_local``: the embedded data set, prepared on first use)."""
  from effnet_jax.data import embedded, sources
  data = data_lib.DataConfig(source='embedded' if name == embedded.FashionMnistLocal.name
                             else 'tfds', name=name, data_dir=data_dir)
  if not split:
    splits = sources.split_names(data)
    split = next((s for s in EVAL_SPLITS if s in splits), None)
    if split is None:
      raise data_lib.DataError(f'TFDS data set {name!r} has no split {" or ".join(EVAL_SPLITS)}; '
                               f'choose one of {splits}')
  # The train split is never read: the same one, so a data set of one split (ImageNet-V2) opens.
  return dataclasses.replace(data, train_split=split, eval_split=split)


def folder_data(folder: str, on_bad_image: str = 'error') -> data_lib.DataConfig:
  """An image folder (``folder/<class name>/**/<image>``) as the eval split."""
  return data_lib.DataConfig(source='folder', eval_folder=folder, on_bad_image=on_bad_image)


def describe_data(data: data_lib.DataConfig) -> str:
  """The eval data as the command line named it: the folder, or ``name:split``."""
  return data.eval_folder if data.source == 'folder' else f'{data.name}:{data.eval_split}'


def evaluate_weights(weights: str, data: data_lib.DataConfig,
                     image_sizes: Iterable[int] | None = None, batch_size: int = 0,
                     progress: bool = False) -> list[dict]:
  """Any weights on the labelled eval split of ``data`` at each of ``image_sizes`` (default: the
  weights' eval size), through the evaluation pipeline and the sharded eval step of a training
  run (every process reads its share). ``weights`` goes as it is to
  ``effnet_jax.pretrained.load_pretrained_with_meta``; the preprocessing is the weights' own
  (their ModelConfig: crop fraction and mode, interpolation, mean/std), as in
  ``effnet_jax.predict``. The data's classes are matched by name to the weights' outputs
  (:func:`output_class_names`). ``progress``: a line with images/s and ETA on stderr (process 0).

  One row per size: ``{'weights', 'data', 'image_size', 'top1', 'top5' (percent), 'loss',
  'count', 'seconds'}``, and ``'published_top1'`` (percent) where the weights carry one."""
  from effnet_jax.predict import eval_preprocessing
  from effnet_jax.pretrained import load_pretrained_with_meta
  model, variables, meta, mcfg = load_pretrained_with_meta(weights, depthwise_impl='auto',
                                                           conv_impl='auto')
  if not mcfg.num_classes:
    raise ValueError(f'{weights}: a feature extractor (num_classes=0) has no classes to evaluate')
  info = data_lib.dataset_info(data)
  outputs = class_outputs(
      info.class_names, output_class_names(mcfg.num_classes, meta.get('class_names')),
      *((data.eval_folder, 'class sub-folder') if data.source == 'folder'
        else (f'TFDS {data.name}', 'label')))
  mesh = make_mesh(1)  # eval uses the running BN statistics: no groups
  devices = jax.device_count()
  batch = -(-(batch_size or DEFAULT_BATCH_SIZE) // devices) * devices
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  variables = jax.device_put(variables, replicated)
  published = (meta.get('source') or {}).get('top1')
  # every process's shard has at most ceil(n / P) images: the number of batches each reads
  per_process = -(-info.num_eval_examples // jax.process_count())
  steps = -(-per_process // (batch // jax.process_count()))
  rows = []
  for size in image_sizes or [mcfg.eval_image_size]:
    prep = eval_preprocessing(mcfg, size)
    eval_step = builders.lower_model_eval_step(model, variables, mesh, batch, size).compile()
    barrier(f'evaluate_weights/compiled/{size}')  # as in evaluate_sizes
    bar = ProgressBar(steps, batch, enabled=progress and jax.process_index() == 0)
    t0 = time.time()
    batches = ({**b, 'labels': outputs[b['labels']]} for b in data_lib.eval_iterator(
        data, prep, batch, jax.process_index(), jax.process_count()))
    scores = evaluate(eval_step, variables, batches, mesh, bar.update)
    bar.update(steps, force=True)
    bar.close()
    row = {'weights': weights, 'data': describe_data(data), 'image_size': size,
           'top1': 100 * scores['top1'], 'top5': 100 * scores['top5'], 'loss': scores['loss'],
           'count': int(scores['count']), 'seconds': round(time.time() - t0, 1)}
    if published is not None:
      row['published_top1'] = float(published)
    rows.append(row)
  return rows


def format_weight_rows(rows: list[dict]) -> str:
  """The rows of :func:`evaluate_weights` as a table (published top-1 where known)."""
  published = 'published_top1' in rows[0]
  lines = [['image', 'top-1', 'top-5', 'loss', 'images'] + (['published top-1'] if published
                                                             else [])]
  for r in rows:
    lines.append([str(r['image_size']), f"{r['top1']:.2f}", f"{r['top5']:.2f}", f"{r['loss']:.4f}",
                  str(r['count'])] + ([f"{r['published_top1']:.2f}"] if published else []))
  return _table(lines)


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
  return _table(lines)


def _table(lines: list[list[str]]) -> str:
  widths = [max(len(l[i]) for l in lines) for i in range(len(lines[0]))]
  return '\n'.join('  '.join(v.rjust(w) for v, w in zip(l, widths)) for l in lines)
