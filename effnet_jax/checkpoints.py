"""Orbax checkpoints: async saves, keep the latest N plus the best, auto-resume, model checks.

A checkpoint holds the ``TrainState`` and a JSON description of the run (model name and
overrides, the config), so a checkpoint is self-describing and a checkpoint of another model
is rejected with the list of mismatched parameters instead of a shape error deep in Orbax.

Two kinds of manager: the trainer's (:func:`create_manager`) writes, keeps the latest N plus the
best, and removes the temporary directories of saves that a killed run left behind; a reader's
(:func:`open_reader`: evaluate, predict, export, fine-tuning's ``init_from``) never writes,
creates or removes anything, so it is safe beside a run that is saving. A step that does not
restore (a truncated file, torn metadata) is skipped for the next older one
(:func:`restore_intact`); the trainer also moves it aside.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
import sys
from typing import Any, Callable, Sequence

import jax
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


def item_handlers() -> dict[str, ocp.CheckpointHandler]:
  """The two items of a checkpoint: the train state (a pytree) and the run description."""
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


def save(manager: ocp.CheckpointManager, step: int, state, run: dict[str, Any],
         force: bool = False) -> bool:
  """Starts an (async) save of ``state`` and the run description at ``step``; an I/O error of
  this save (or of an earlier async one) raises :class:`CheckpointError`."""
  args = ocp.args.Composite(state=ocp.args.StandardSave(state), run=ocp.args.JsonSave(run))
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


def read_run(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  """The run description saved with ``step`` (model, overrides, classes, config)."""
  return manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']


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


def run_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
  """``{key: (saved value, current value)}`` for what differs between two run descriptions:
  the config's keys (but :data:`RESUME_FREE_KEYS`) and the data set's class names."""
  def described(run):
    return _flatten(run.get('config', {})) | {'class_names': run.get('class_names')}
  old, new = described(saved), described(current)
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k)}


def _allowed(key: str, allowed: Sequence[str]) -> bool:
  return any(a == 'all' or key == a or key.startswith(a + '.') for a in allowed)


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 60 else text[:57] + '...'


def check_same_run(saved: dict[str, Any], current: dict[str, Any], allowed: Sequence[str],
                   where: str) -> list[str]:
  """The keys in which ``current`` (the config now) departs from ``saved`` (the checkpoint's
  run description) as ``allowed`` permits ('all', a key, or a section like 'schedule');
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
