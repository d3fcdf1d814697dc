"""Orbax checkpoints: async saves, keep the latest N plus the best, auto-resume, model checks.

A checkpoint holds the ``TrainState`` and a JSON description of the run (model name and
overrides, the config), so a checkpoint is self-describing and a checkpoint of another model
is rejected with the list of mismatched parameters instead of a shape error deep in Orbax.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

BEST_METRIC = 'eval/top1'


class CheckpointError(RuntimeError):
  """A checkpoint could not be written (a full disk, a quota, permissions); the message names
  the latest complete checkpoint, which a rerun resumes from."""


def create_manager(workdir: str, keep: int = 3, keep_best: bool = True,
                   async_save: bool = True) -> ocp.CheckpointManager:
  """A manager under ``workdir/checkpoints`` keeping the ``keep`` latest saves (plus the one
  with the best ``eval/top1`` if ``keep_best``)."""
  policies = [preservation.LatestN(keep)]
  if keep_best:
    policies.append(preservation.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1,
                                       keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preservation.AnyPreservationPolicy(policies),
      enable_async_checkpointing=async_save, cleanup_tmp_directories=True)
  directory = os.path.join(workdir, 'checkpoints')
  if '://' not in directory:  # gs://bucket/... stays a URL
    directory = os.path.abspath(directory)
  return ocp.CheckpointManager(directory,
                               options=options, item_handlers=item_handlers())


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
  return sorted(ocp.utils.checkpoint_steps(directory))


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
         metrics: dict[str, float] | None = None, force: bool = False) -> bool:
  """Starts an (async) save of ``state`` and the run description at ``step``; an I/O error of
  this save (or of an earlier async one) raises :class:`CheckpointError`."""
  args = ocp.args.Composite(state=ocp.args.StandardSave(state), run=ocp.args.JsonSave(run))
  return _guarded(manager, lambda: manager.save(step, args=args, metrics=metrics, force=force))


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
  """Raises ValueError naming every missing, unexpected or differently shaped entry."""
  saved, target = _paths(saved_tree), _paths(target_tree)
  missing = sorted(set(target) - set(saved))
  unexpected = sorted(set(saved) - set(target))
  reshaped = sorted(k for k in set(saved) & set(target) if tuple(saved[k]) != tuple(target[k]))
  if missing or unexpected or reshaped:
    lines = [f'{what} does not match the model being trained:']
    for label, keys in (('missing from the checkpoint', missing),
                        ('unexpected in the checkpoint', unexpected),
                        ('shape differs', [f'{k}: checkpoint {saved[k]} vs model {target[k]}'
                                           for k in reshaped])):
      if keys:
        shown = keys[:12] + ([f'... and {len(keys) - 12} more'] if len(keys) > 12 else [])
        lines.append(f'  {label} ({len(keys)}): ' + ', '.join(shown))
    raise ValueError('\n'.join(lines))


def restore(manager: ocp.CheckpointManager, step: int, abstract_state) -> tuple[Any, dict]:
  """Restores ``step`` onto the shardings of ``abstract_state`` (any device count).

  ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings (e.g. from
  ``jax.eval_shape`` plus the mesh's replicated sharding).
  """
  metadata = manager.item_metadata(step)
  saved_state = metadata['state']
  if saved_state is not None:
    check_compatible(saved_state, abstract_state, f'checkpoint step {step} in {manager.directory}')
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), run=ocp.args.JsonRestore()))
  return restored['state'], restored['run']
