"""The run record and the two on-disk formats: training checkpoints and pretrained directories.

Both formats are written and read here, and only here; nothing in this module builds a model
(``effnet_jax.pretrained`` does, on top of it).

The run record (:class:`RunRecord`) describes a training run: the model and its overrides, the
classes, the train and eval image sizes and the whole config. The trainer saves it beside every
checkpoint, so a checkpoint is self-describing and a checkpoint of another model is rejected
with the list of mismatched parameters instead of a shape error deep in Orbax.

A training workdir's ``checkpoints/N/`` holds two Orbax items: ``state`` (the ``TrainState``)
and ``run`` (the run record as JSON). Two kinds of manager: the trainer's
(:func:`create_manager`) writes, keeps the latest N plus the best, and removes the temporary
directories of saves that a killed run left behind; a reader's (:func:`open_reader`: evaluate,
predict, export, fine-tuning's ``init_from``) never writes, creates or removes anything, so it
is safe beside a run that is saving. A step that does not restore (a truncated file, torn
metadata) is skipped for the next older one (:func:`restore_intact`); the trainer also moves it
aside.

A pretrained directory holds ``model.json`` (:data:`PRETRAINED_FORMAT`, the registered model
name, its overrides, the source and class names) and ``variables/`` (an Orbax checkpoint of
``{'params', 'batch_stats'}``); :func:`write_pretrained` replaces one atomically.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

UNRESTORABLE = 'unrestorable'  # step N that does not restore -> checkpoints/N.unrestorable-TIME


class CheckpointError(RuntimeError):
  """A checkpoint could not be written (a full disk, a quota, permissions) or none restores;
  the message says what is kept and how to go on."""


class CheckpointMismatch(ValueError):
  """The checkpoint belongs to another model or run: a user error, never a reason to fall back
  to an older step."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """What a training run is: saved beside each of its checkpoints, checked when it resumes,
  read by every tool that opens a workdir.

  ``model_overrides`` are the ModelConfig fields the config sets; ``image_size`` and
  ``eval_image_size`` the resolutions the run trains and evaluates at (the config's, else the
  model's); ``config`` the whole config as JSON (``json.loads(config.to_json())``)."""
  model: str
  model_overrides: dict[str, Any]
  num_classes: int
  class_names: list[str] | None
  image_size: int
  eval_image_size: int
  config: dict[str, Any]

  def to_json(self) -> dict[str, Any]:
    """The JSON object saved as a checkpoint's ``run`` item."""
    return {'model': self.model, 'model_overrides': dict(self.model_overrides),
            'num_classes': self.num_classes,
            'class_names': None if self.class_names is None else list(self.class_names),
            'image_size': self.image_size, 'eval_image_size': self.eval_image_size,
            'config': self.config}

  @classmethod
  def from_json(cls, run: Mapping[str, Any] | str) -> RunRecord:
    """The record of a ``run`` item (a JSON object, or its text); keys it does not know are
    ignored, a missing ``model_overrides`` is read from the config, missing class names are
    None."""
    if isinstance(run, str):
      run = json.loads(run)
    config = dict(run['config'])
    overrides = run.get('model_overrides')
    if overrides is None:
      overrides = {k: v for k, v in (config.get('model_overrides') or {}).items()
                   if v is not None}
    return cls(model=run.get('model', config.get('model')), model_overrides=dict(overrides),
               num_classes=int(run['num_classes']), class_names=run.get('class_names'),
               image_size=int(run['image_size']), eval_image_size=int(run['eval_image_size']),
               config=config)


def _record(run: RunRecord | Mapping[str, Any]) -> RunRecord:
  return run if isinstance(run, RunRecord) else RunRecord.from_json(run)


@dataclasses.dataclass
class BestScored:
  """Orbax preservation policy: keep the checkpoint with the highest score in ``scores``
  (step -> eval/top1). The trainer saves a step *before* evaluating it (an evaluation that fails
  loses no training) and enters its score afterwards, so Orbax's own ``metrics`` argument,
  which must be known at save time, cannot be used."""
  scores: dict[int, float]

  def should_preserve(self, checkpoints, *, context=None) -> list[bool]:
    del context
    scored = [c.step for c in checkpoints if c.step in self.scores]
    best = max(scored, key=lambda s: (self.scores[s], s)) if scored else None
    return [c.step == best for c in checkpoints]


def checkpoints_dir(workdir: str) -> str:
  directory = os.path.join(workdir, 'checkpoints')
  return directory if '://' in directory else os.path.abspath(directory)  # gs://... stays a URL


def create_manager(workdir: str, keep: int = 3, best_scores: dict[int, float] | None = None,
                   async_save: bool = True) -> ocp.CheckpointManager:
  """The trainer's manager under ``workdir/checkpoints``: keeps the ``keep`` latest saves plus,
  given ``best_scores`` (filled as evaluations finish), the best scored one."""
  policies = [preservation.LatestN(keep)]
  if best_scores is not None:
    policies.append(BestScored(best_scores))
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preservation.AnyPreservationPolicy(policies),
      enable_async_checkpointing=async_save, cleanup_tmp_directories=True)
  return ocp.CheckpointManager(checkpoints_dir(workdir), options=options,
                               item_handlers=item_handlers())


def open_reader(workdir: str) -> ocp.CheckpointManager:
  """A read-only manager of ``workdir``'s checkpoints: it creates, cleans up and deletes
  nothing (a writer's manager removes unfinished saves, which would kill a live run's save in
  progress). FileNotFoundError when the directory is missing (a mistyped path stays absent)."""
  directory = checkpoints_dir(workdir)
  if not epath.Path(directory).is_dir():
    raise FileNotFoundError(f'no checkpoints in {directory}')
  options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0,
                                         cleanup_tmp_directories=False)
  from absl import logging
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # Orbax warns that a read-only manager is read-only
  try:
    return _listing(lambda: ocp.CheckpointManager(directory, options=options,
                                                  item_handlers=item_handlers()))
  finally:
    logging.set_verbosity(verbosity)


def _listing(read: Callable[[], Any], attempts: int = 10):
  """``read()`` of a checkpoint directory listing, again where a step vanished between the
  listing and a look inside it (the live run's retention removed it meanwhile)."""
  for attempt in range(attempts):
    try:
      return read()
    except FileNotFoundError:
      if attempt == attempts - 1:
        raise


# Replicated arrays (the data-parallel train state) are written by all their replicas at once,
# each a slice (Orbax's replica-parallel save), only where a replica's slice holds at least this
# many bytes; a smaller array is written whole by one replica. Each slice is a device op compiled
# for its shape on first use: slicing every array cost the first save of a 300-array state on 4
# CPU devices 5.7 s (0.6 s with the threshold), for arrays that take microseconds to write.
MIN_REPLICA_SLICE_BYTES = 1 << 20
_array_handler = None


def item_handlers() -> dict[str, ocp.CheckpointHandler]:
  """The two items of a checkpoint: the train state (a pytree) and the run record (JSON)."""
  global _array_handler
  if ocp.type_handlers.get_type_handler(jax.Array) is not _array_handler:
    _array_handler = ocp.type_handlers.ArrayHandler(
        min_slice_bytes_for_replica_parallel=MIN_REPLICA_SLICE_BYTES)
    # the override is intended: keep Orbax from logging a warning about it on every run
    def quiet(record: logging.LogRecord) -> bool:
      return not record.getMessage().startswith('Type handler registry type')
    logging.getLogger('absl').addFilter(quiet)
    try:
      ocp.type_handlers.register_type_handler(jax.Array, _array_handler, override=True)
    finally:
      logging.getLogger('absl').removeFilter(quiet)
  return {'state': ocp.StandardCheckpointHandler(), 'run': ocp.JsonCheckpointHandler()}


_STORAGE_STATUSES = ('RESOURCE_EXHAUSTED:', 'PERMISSION_DENIED:')


def storage_error(error: BaseException) -> BaseException | None:
  """The storage failure behind ``error``, or None: an OSError, or tensorstore's report of one
  (a ValueError with an ``os_error_code``, or a full / forbidden bucket). Orbax re-raises the
  errors of its writer threads wrapped in others."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError) or (isinstance(error, ValueError) and (
        'os_error_code' in str(error) or str(error).startswith(_STORAGE_STATUSES))):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


def finished_steps(directory: str) -> list[int]:
  """The steps of ``directory`` (a manager's) whose checkpoint is complete, read from storage:
  an interrupted save leaves an ``N.orbax-checkpoint-tmp-*`` directory (local disks) or an
  ``N`` without its commit marker (GCS), which a restart ignores and removes."""
  return sorted(_listing(lambda: ocp.utils.checkpoint_steps(directory)))


def _guarded(manager: ocp.CheckpointManager, write: Callable[[], Any]):
  try:
    return write()
  except Exception as error:  # pylint: disable=broad-except
    cause = storage_error(error)
    if cause is None:
      raise
    steps = finished_steps(str(manager.directory))
    latest = (f'the latest complete checkpoint, step {steps[-1]}, is intact: rerunning the same '
              'command resumes from it' if steps else 'there is no complete checkpoint yet')
    raise CheckpointError(f'could not write a checkpoint in {manager.directory}: {cause}. '
                          f'{latest[0].upper()}{latest[1:]} once the storage takes writes again '
                          '(space, quota, permissions), or point --workdir elsewhere.') from error


def save(manager: ocp.CheckpointManager, step: int, state, run: RunRecord,
         force: bool = False) -> bool:
  """Starts an (async) save of ``state`` and the run record at ``step``; an I/O error of this
  save (or of an earlier async one) raises :class:`CheckpointError`."""
  args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                            run=ocp.args.JsonSave(_record(run).to_json()))
  return _guarded(manager, lambda: manager.save(step, args=args, force=force))


def wait_until_finished(manager: ocp.CheckpointManager) -> None:
  """Waits for the pending async save; its I/O error raises :class:`CheckpointError`."""
  _guarded(manager, manager.wait_until_finished)


def _key_name(key) -> str:
  for attr in ('key', 'name', 'idx'):  # DictKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _paths(tree) -> dict[str, tuple]:
  """``{'params/stem/conv/kernel': shape}``: the same names whether the tree is the train
  state dataclass or the nested dicts of a checkpoint's metadata."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {'/'.join(_key_name(k) for k in path): getattr(leaf, 'shape', ())
          for path, leaf in flat}


def check_compatible(saved_tree, target_tree, what: str = 'checkpoint') -> None:
  """Raises :class:`CheckpointMismatch` (a ValueError) naming every missing, unexpected or
  differently shaped entry."""
  saved, target = _paths(saved_tree), _paths(target_tree)
  missing = sorted(set(target) - set(saved))
  unexpected = sorted(set(saved) - set(target))
  reshaped = sorted(k for k in set(saved) & set(target) if tuple(saved[k]) != tuple(target[k]))
  if missing or unexpected or reshaped:
    lines = [f'{what} does not match the model:']
    for label, keys in (('missing from the checkpoint', missing),
                        ('unexpected in the checkpoint', unexpected),
                        ('shape differs', [f'{k}: checkpoint {saved[k]} vs model {target[k]}'
                                           for k in reshaped])):
      if keys:
        shown = keys[:12] + ([f'... and {len(keys) - 12} more'] if len(keys) > 12 else [])
        lines.append(f'  {label} ({len(keys)}): ' + ', '.join(shown))
    raise CheckpointMismatch('\n'.join(lines))


def restore(manager: ocp.CheckpointManager, step: int, abstract_state):
  """Restores ``step`` onto the shardings of ``abstract_state`` (any device count).

  ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings (e.g. from
  ``jax.eval_shape`` plus the mesh's replicated sharding).
  """
  metadata = manager.item_metadata(step)
  saved_state = metadata['state']
  if saved_state is not None:
    check_compatible(saved_state, abstract_state, f'checkpoint step {step} in {manager.directory}')
  return manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state)))['state']


def read_run(manager: ocp.CheckpointManager, step: int) -> RunRecord:
  """The run record saved with ``step`` (model, overrides, classes, image sizes, config)."""
  return RunRecord.from_json(
      manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run'])


def one_line(error: BaseException) -> str:
  """An error's message on one line, without tensorstore's appended spec, at most 300 chars."""
  text = ' '.join(str(error).split()) or type(error).__name__
  array = re.search(r"'path': '([^/'][^']*?)/?'", text)  # in the tensorstore spec: which array
  text = text.split(' See full TensorStore details')[0]  # tensorstore appends a page of spec
  if array and array.group(1) not in text:
    text += f' (array {array.group(1)})'
  if type(error) is not Exception:
    text = f'{type(error).__name__}: {text}'
  return text if len(text) <= 300 else text[:297] + '...'


def move_aside(directory: str, step: int) -> str:
  """Renames step ``step`` of ``directory`` to ``N.unrestorable-<UTC time>`` (never deletes:
  the files may still be of use to someone); returns the new path."""
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S')
  source = epath.Path(directory) / str(step)
  target = epath.Path(directory) / f'{step}.{UNRESTORABLE}-{stamp}'
  source.rename(target)
  return str(target)


def restore_intact(manager: ocp.CheckpointManager, restore_step: Callable[[int], Any],
                   steps: Sequence[int] | None = None, move_bad: bool = False,
                   agree: Callable[[bool], bool] = lambda ok: ok) -> tuple[int, Any]:
  """``(step, restore_step(step))`` for the first of ``steps`` (default: every complete step,
  newest first) that restores.

  A step that fails is reported in one line on stderr (step, path, reason) and, with
  ``move_bad`` (the trainer), renamed aside by :func:`move_aside`; readers only report. A step
  that vanished while it was read (the live run's retention removed it) is not a fault: the
  list is read again. :class:`CheckpointMismatch` (another model or run) is raised at once.
  ``agree`` combines every process's success (a multi-process restore must take the same step
  everywhere). None intact: :class:`CheckpointError` listing each failure.
  """
  directory = str(manager.directory)
  failures, tried = [], set()
  while True:
    candidates = [s for s in (steps if steps is not None else
                              sorted(finished_steps(directory), reverse=True)) if s not in tried]
    if not candidates:
      break
    step = candidates[0]
    tried.add(step)
    try:
      result, error = restore_step(step), None
    except CheckpointMismatch:
      raise
    except Exception as caught:  # pylint: disable=broad-except
      result, error = None, caught
    if agree(error is None):  # (a later step's agreement follows process 0's renames)
      if move_bad and failures:
        manager.reload()
      return step, result
    if error is None:
      error = RuntimeError('another process could not restore it')
    if step not in finished_steps(directory):
      continue  # removed by the run's retention while it was read: not a fault
    where = os.path.join(directory, str(step))
    line = f'checkpoint step {step} ({where}) does not restore: {one_line(error)}'
    if move_bad:
      if jax.process_index() == 0:
        where = move_aside(directory, step)
      line += f'; moved aside to {os.path.basename(where)}'
    print(f'effnet_jax: {line}', file=sys.stderr, flush=True)
    failures.append(line)
  if not failures:
    raise FileNotFoundError(f'no checkpoint in {directory} to restore (steps {sorted(tried)} '
                            'were removed while they were read)' if tried else
                            f'no checkpoints in {directory}')
  moved = (' Each was moved aside: rerunning starts a fresh run in this workdir; rename one back '
           'to its step number to try it again.' if move_bad else '')
  raise CheckpointError(f'no checkpoint in {directory} restores: ' + '; '.join(failures) + moved)


# Config keys a resumed run may change freely: how the run is watched and stored, not what it
# computes.
RESUME_FREE_KEYS = ('log_every_steps', 'eval_every_epochs', 'eval_batch_size',
                    'checkpoint_every_steps', 'keep_checkpoints', 'async_checkpoints',
                    'progress_bar', 'tensorboard', 'compilation_cache_dir', 'init_from',
                    'data.cache', 'curriculum.aot_compile')


def _flatten(tree: dict, prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def run_changes(saved: RunRecord | Mapping[str, Any], current: RunRecord | Mapping[str, Any]
                ) -> dict[str, tuple[Any, Any]]:
  """``{key: (saved value, current value)}`` for what differs between two run records (or
  their JSON): the config's keys (but :data:`RESUME_FREE_KEYS`) and the data set's class
  names."""
  def described(run):
    run = _record(run).to_json()
    return _flatten(run['config']) | {'class_names': run['class_names']}
  old, new = described(saved), described(current)
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k)}


def _allowed(key: str, allowed: Sequence[str]) -> bool:
  return any(a == 'all' or key == a or key.startswith(a + '.') for a in allowed)


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 60 else text[:57] + '...'


def check_same_run(saved: RunRecord | Mapping[str, Any], current: RunRecord | Mapping[str, Any],
                   allowed: Sequence[str], where: str) -> list[str]:
  """The keys in which ``current`` (the config now) departs from ``saved`` (the checkpoint's
  run record) as ``allowed`` permits ('all', a key, or a section like 'schedule');
  :class:`CheckpointMismatch` naming every other difference."""
  changes = run_changes(saved, current)
  refused = [k for k in changes if not _allowed(k, allowed)]
  if refused:
    shown = '; '.join(f'{k}: {_short(changes[k][0])} -> {_short(changes[k][1])}'
                      for k in refused[:12])
    more = f'; ... and {len(refused) - 12} more' if len(refused) > 12 else ''
    raise CheckpointMismatch(
        f'{where} was trained with another run description than this config: {shown}{more}. '
        'Use a new --workdir for a new run, or continue this one with the changes deliberately: '
        f'--allow_changes={",".join(refused)}')
  return list(changes)


# --- A training workdir's weights, for readers -------------------------------------------------


def is_workdir(path: str) -> bool:
  """Whether ``path`` is a training workdir (a ``checkpoints/`` and no ``model.json``)."""
  return os.path.isdir(os.path.join(path, 'checkpoints')) and not os.path.exists(
      os.path.join(path, PRETRAINED_META))


def read_workdir(path: str, restore: bool = True
                 ) -> tuple[int, RunRecord, dict[str, Any] | None, str | None]:
  """``(step, run record, {'params', 'batch_stats'}, 'ema' | 'raw')`` of the newest checkpoint
  of ``path`` that restores: its EMA weights when the run kept them. Without ``restore`` only
  the record is read (weights and kind None). Read-only: safe beside the run while it saves."""
  manager = open_reader(path)

  def read(step: int):
    run = read_run(manager, step)
    if not restore:
      return run, None
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return run, state['state']

  step, (run, state) = restore_intact(manager, read)
  manager.close()
  if state is None:
    return step, run, None, None
  use_ema = state.get('ema_params') is not None
  variables = {'params': state['ema_params' if use_ema else 'params'],
               'batch_stats': state['ema_batch_stats' if use_ema else 'batch_stats']}
  return step, run, variables, 'ema' if use_ema else 'raw'


# --- Pretrained directories ------------------------------------------------------------------

PRETRAINED_FORMAT = 'effnet_jax.pretrained/1'
PRETRAINED_META = 'model.json'
PRETRAINED_VARIABLES = 'variables'


def _jsonable(overrides: Mapping[str, Any]) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def pretrained_meta(model: str, overrides: Mapping[str, Any] | None = None,
                    source: Mapping[str, Any] | None = None,
                    class_names: Sequence[str] | None = None) -> dict[str, Any]:
  """The ``model.json`` object of a pretrained directory."""
  return {'format': PRETRAINED_FORMAT, 'model': model, 'overrides': _jsonable(overrides or {}),
          'source': dict(source or {}),
          'class_names': None if class_names is None else list(class_names)}


def write_pretrained(directory: str, meta: Mapping[str, Any],
                     variables: Mapping[str, Any]) -> str:
  """Writes a pretrained directory: ``meta`` (:func:`pretrained_meta`) as ``model.json`` and
  ``variables`` ({'params', 'batch_stats'}) as ``variables/``; returns its absolute path.

  Atomic: everything is written to a temporary sibling that is then renamed to ``directory``, so
  a reader never sees new variables beside an old model.json, and an interrupted write leaves
  the previous directory as it was. An existing pretrained directory (or an empty one) there is
  replaced; any other existing directory is an error (its files are not ours to delete)."""
  directory = os.path.abspath(directory)
  if os.path.exists(directory) and not (
      os.path.exists(os.path.join(directory, PRETRAINED_META)) or
      os.path.isdir(directory) and not os.listdir(directory)):
    raise FileExistsError(f'{directory} exists and is not a pretrained directory (no '
                          f'{PRETRAINED_META}); give a new or empty directory')
  parent, name = os.path.split(directory)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(os.path.join(staging, PRETRAINED_VARIABLES),
                        jax.tree_util.tree_map(np.asarray, dict(variables)))
    with open(os.path.join(staging, PRETRAINED_META), 'w') as f:
      json.dump(dict(meta), f, indent=1)
    if os.path.exists(directory):  # swap: the old one is removed only once the new one is in
      old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
      os.rename(directory, os.path.join(old, name))
      os.rename(staging, directory)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return directory


def read_pretrained_meta(path: str) -> dict[str, Any]:
  """The ``model.json`` object of the pretrained directory ``path``; FileNotFoundError when
  there is none, ValueError when it is not valid JSON or of another format."""
  meta_path = os.path.join(path, PRETRAINED_META)
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f'{path} is not a pretrained directory (no {PRETRAINED_META}) nor '
                            'a training workdir (no checkpoints/)')
  with open(meta_path) as f:
    try:
      meta = json.load(f)
    except ValueError as error:
      raise ValueError(f'{meta_path} is not valid JSON (a write cut short?): {error}') from None
  if meta.get('format') != PRETRAINED_FORMAT:
    raise ValueError(f'{meta_path}: format {meta.get("format")!r}, expected '
                     f'{PRETRAINED_FORMAT!r}')
  return meta


def read_pretrained_variables(path: str) -> dict[str, Any]:
  """``{'params', 'batch_stats'}`` of the pretrained directory ``path`` (unchecked against any
  model); :class:`CheckpointError` when ``variables/`` does not restore."""
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(os.path.join(path, PRETRAINED_VARIABLES))
  except Exception as error:  # pylint: disable=broad-except
    raise CheckpointError(f'{path}: {PRETRAINED_VARIABLES}/ does not restore: '
                          f'{one_line(error)}') from None
  return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
