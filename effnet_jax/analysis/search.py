"""What the two architecture searches share: an Optuna study of candidates, shared by any number
of worker processes through the study's storage, each candidate trained once by the real trainer.

Optuna (not OSS Vizier, docs/ablations.md says why): a study lives in a storage URL — by default
an SQLite file in the work directory, ``sqlite:///WORKDIR/study.db``; any SQLAlchemy URL
(``postgresql://...``, ``mysql://...``) lets workers on many hosts share one study. A worker is
one ``tools.ablate`` process; start several with the same config and work directory (and
``--config.worker=K``, distinct per worker: it seeds the worker's sampler).

**A candidate** is a network (its block strings); its ``key`` is the network's identity, so two
proposals that build the same network are one candidate. Each trial of the study proposes one
(``space.propose(trial)``) and then:

1. writes the key on its trial (a user attribute), then reads the other trials of that key;
2. if one of them is complete, it copies that trial's values without training (the duplicate
   is marked ``duplicate_of``; Optuna's own advice for repeated proposals);
3. if one is running, it gives the candidate up (the trial is pruned, ``claimed_by``);
4. otherwise it marks itself ``training`` and trains the candidate in
   ``WORKDIR/runs/<study>-<hash>/seed0``.

Writing before reading makes the claim safe without a lock: of two trials with the same key, the
one that reads second sees the other's key, so at most one trains (if both see each other both
give it up; the candidate can come up again later). A worker stops when the study holds
``candidates`` distinct trained candidates; when the rest are all being trained by other
workers' ``training`` trials it waits for them (two workers starting the last two candidates at
the same moment may train one more than asked). SQLite (the default) suits workers on one
machine or a shared disk; Optuna's own caveat is that it is not for heavy parallel writes, so many
hosts should use a server database.

**Resuming.** Finished candidates are in the storage and never retrain; a finished run is also
read back from its directory. The storage keeps a heartbeat of every running trial (RDB
storages): a killed worker's trial is failed once it has been silent for ``heartbeat_grace``
seconds, and a worker re-proposes the failed trials' candidates first (an Optuna
``enqueue_trial``), training them from their directory. A resumed worker's sampler is seeded
with the number of trials already in the study, so it proposes new candidates, not its first
ones again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings
from typing import Any, Callable

import ml_collections

SAMPLERS = ('random', 'tpe', 'nsga2')


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A proposed network: ``key`` (its identity), ``overrides`` (the training config's
  ``model_overrides`` that build it) and ``info`` (CSV columns)."""
  key: str
  overrides: dict[str, Any]
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  def row_name(self, study: str) -> str:
    return f'{study}-{hashlib.sha1(self.key.encode()).hexdigest()[:10]}'


class Infeasible(Exception):
  """A proposal no network of the space satisfies (e.g. the MACs budget): the trial is pruned
  and proposes again."""


def storage_url(config: ml_collections.ConfigDict, workdir: str) -> str:
  return config.storage or f'sqlite:///{os.path.abspath(os.path.join(workdir, "study.db"))}'


def open_storage(config: ml_collections.ConfigDict, workdir: str):
  """The study storage: an RDB storage with a heartbeat (SQLite waits up to a minute for a
  lock another worker holds instead of failing)."""
  import optuna
  url = storage_url(config, workdir)
  engine = {'connect_args': {'timeout': 60}} if url.startswith('sqlite') else {}

  def create():
    with warnings.catch_warnings():  # the heartbeat is experimental in Optuna
      warnings.simplefilter('ignore')
      return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                        heartbeat_interval=int(config.heartbeat_seconds),
                                        grace_period=int(config.heartbeat_grace))

  if not url.startswith('sqlite:///'):
    return create()
  import fcntl
  path = url[len('sqlite:///'):]
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  # workers started together would each create the new file's schema: one at a time
  with open(path + '.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    return create()


def make_sampler(name: str, seed: int, num_objectives: int, startup: int):
  """``random`` (the searches' baseline), ``tpe`` (model-based: multi-objective TPE after
  ``startup`` random proposals, with the constant liar so parallel workers spread out) or
  ``nsga2`` (evolutionary; population ``startup``)."""
  import optuna
  if name == 'random':
    return optuna.samplers.RandomSampler(seed=seed)
  if name == 'tpe':
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=True)
  if name == 'nsga2':
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup))
  raise ValueError(f'unknown sampler {name!r}; expected one of {SAMPLERS}')


def open_study(config: ml_collections.ConfigDict, workdir: str, name: str,
               directions: tuple[str, ...], sampler: str):
  """The study ``name`` in the config's storage (created, or loaded to resume), with this
  worker's sampler."""
  import optuna
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  storage = open_storage(config, workdir)
  try:
    study = optuna.create_study(storage=storage, study_name=name, directions=list(directions),
                                load_if_exists=True)
  except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
    study = optuna.load_study(study_name=name, storage=storage)
  seed = int(config.seed) + 7919 * int(config.worker) + len(study.get_trials(deepcopy=False))
  study.sampler = make_sampler(sampler, seed, len(directions), int(config.startup))
  return study


def _state():
  from optuna.trial import TrialState
  return TrialState


def trials_of(study, key: str, exclude: int, states) -> list:
  return [t for t in study.get_trials(deepcopy=False, states=states)
          if t.number != exclude and t.user_attrs.get('candidate') == key]


def trained(study) -> list:
  """The study's complete trials that trained their candidate (not duplicates), one per key."""
  seen, out = set(), []
  for t in study.get_trials(deepcopy=False, states=(_state().COMPLETE,)):
    key = t.user_attrs.get('candidate')
    if key is not None and 'duplicate_of' not in t.user_attrs and key not in seen:
      seen.add(key)
      out.append(t)
  return out


def claimed_keys(study, exclude: int) -> set[str]:
  """Keys trained or being trained by trials other than ``exclude``."""
  state = _state()
  keys = {t.user_attrs.get('candidate') for t in trained(study)}
  keys |= {t.user_attrs.get('candidate') for t in study.get_trials(
      deepcopy=False, states=(state.RUNNING,)) if t.number != exclude
      and t.user_attrs.get('training')}
  return keys - {None}


def retry_failed(study) -> int:
  """Enqueues the candidates of failed trials (a killed worker's, once its heartbeat is stale)
  that no trial has trained, trains or waits to train; returns how many. A candidate whose run
  diverged (a non-finite loss) is not retried: it would diverge again."""
  import optuna
  state = _state()
  with warnings.catch_warnings():  # experimental in Optuna
    warnings.simplefilter('ignore')
    optuna.storages.fail_stale_trials(study)
  trials = study.get_trials(deepcopy=False)
  live = {t.user_attrs.get('candidate') for t in trials
          if t.state in (state.COMPLETE, state.RUNNING, state.WAITING)}
  live |= {t.user_attrs.get('retry_of_key') for t in trials if t.state == state.WAITING}
  count = 0
  for t in trials:
    key = t.user_attrs.get('candidate')
    if (t.state == state.FAIL and key is not None and key not in live
        and 'diverged' not in t.user_attrs):
      study.enqueue_trial(t.params, user_attrs={'retry_of': t.number, 'retry_of_key': key})
      live.add(key)
      count += 1
  return count


def proposer(study, trial) -> str:
  """Who proposed the trial's candidate: ``enqueued`` (the base network, a retry), the
  sampler's start-up random search, or the sampler."""
  import optuna
  if trial.user_attrs.get('base') or 'retry_of' in trial.user_attrs:
    return 'enqueued'
  sampler = study.sampler
  if isinstance(sampler, optuna.samplers.TPESampler) and len(trained(study)) < sampler._n_startup_trials:
    return 'random (TPE start-up)'
  return type(sampler).__name__


def run_worker(study, propose: Callable, evaluate: Callable, candidates: int,
               values_of: Callable, log: Callable[[str], None] = print,
               max_proposals: int | None = None, poll_seconds: float = 5.0) -> None:
  """Runs trials of ``study`` until it holds ``candidates`` trained candidates (this worker's
  and the others'): each trial proposes (``propose(trial) -> Candidate``, may raise
  :class:`Infeasible`), claims, and trains (``evaluate(candidate) -> metrics``, stored as the
  trial's user attributes; ``values_of(metrics)`` are the objectives). At most
  ``max_proposals`` trials (default ``20 * candidates + 50``)."""
  import optuna
  state = _state()

  def objective(trial):
    try:
      candidate = propose(trial)
    except Infeasible as why:
      trial.set_user_attr('infeasible', str(why))
      raise optuna.TrialPruned(str(why)) from None
    trial.set_user_attr('candidate', candidate.key)  # write, then read: see the module doc
    trial.set_user_attr('proposed_by', proposer(study, trial))
    done = trials_of(study, candidate.key, trial.number, (state.COMPLETE,))
    if done:
      trial.set_user_attr('duplicate_of', done[0].number)
      for k, v in done[0].user_attrs.items():
        if k not in ('candidate', 'duplicate_of', 'claimed_by', 'proposed_by', 'training'):
          trial.set_user_attr(k, v)
      log(f'trial {trial.number}: {candidate.key} trained by trial {done[0].number}; reused')
      return tuple(done[0].values)
    diverged = [t for t in trials_of(study, candidate.key, trial.number, (state.FAIL,))
                if 'diverged' in t.user_attrs]
    if diverged:
      trial.set_user_attr('claimed_by', diverged[0].number)
      raise optuna.TrialPruned(f'diverged in trial {diverged[0].number}')
    running = [t for t in trials_of(study, candidate.key, trial.number, (state.RUNNING,))
               if 'claimed_by' not in t.user_attrs]
    if running:
      trial.set_user_attr('claimed_by', running[0].number)
      log(f'trial {trial.number}: candidate claimed by running trial {running[0].number}')
      raise optuna.TrialPruned('claimed by another trial')
    if len(claimed_keys(study, trial.number)) >= candidates:
      # the rest is being trained by other trials: wait for them (a killed worker's trial fails
      # once its heartbeat is stale, and its candidate is then re-proposed by the next trial)
      while (len(claimed_keys(study, trial.number)) >= candidates
             and len(trained(study)) < candidates):
        time.sleep(poll_seconds)
        retry_failed(study)
      trial.set_user_attr('claimed_by', -1)
      if len(trained(study)) >= candidates:
        study.stop()
      raise optuna.TrialPruned('the study has its candidates, or they are being trained')
    for k, v in candidate.info.items():
      trial.set_user_attr(k, v)
    trial.set_user_attr('training', True)  # what other workers wait for (never a waiting trial)
    try:
      metrics = evaluate(candidate)
    except FloatingPointError as error:  # a diverged run (NaN loss): failed, never retried
      trial.set_user_attr('diverged', str(error))
      log(f'trial {trial.number}: {candidate.key} diverged: {error}')
      raise
    for k, v in metrics.items():
      trial.set_user_attr(k, v)
    return values_of(metrics)

  def stop_when_done(study, trial):
    del trial
    if len(trained(study)) >= candidates:
      study.stop()
    else:
      retry_failed(study)

  retried = retry_failed(study)
  if retried:
    log(f'{retried} candidate(s) of failed trials re-proposed first')
  if len(trained(study)) >= candidates:
    log(f'study {study.study_name} holds {candidates} trained candidates; nothing to train')
    return
  study.optimize(objective, n_trials=max_proposals or 20 * candidates + 50,
                 callbacks=[stop_when_done], catch=(FloatingPointError,))


def train_candidate(config: ml_collections.ConfigDict, candidate: Candidate, study: str,
                    workdir: str, num_classes: int, time_steps: bool) -> dict[str, Any]:
  """Trains ``candidate`` once with the config's training recipe (read back if its run
  finished) and measures it: ``accuracy``, ``params``, ``macs``, ``wall_seconds`` and, with
  ``time_steps``, the train ``step_time`` on this machine (``analysis.timing``: the trainer's
  program on synthetic data, ``timing_repeats`` rounds of ``timing_steps`` steps; cached beside
  the run)."""
  from effnet_jax.analysis import timing, trainer
  row = trainer.Row(candidate.row_name(study), overrides=dict(candidate.overrides),
                    info=candidate.info)
  result = trainer.train_seed(config.train, row, workdir, 0, study)
  run_config = trainer.with_row(config.train, row)
  metrics = {'accuracy': float(result['accuracy']), 'wall_seconds': result['wall_seconds'],
             'run_dir': result['run_dir'], 'name': row.name,
             **trainer.model_cost(run_config, num_classes)}
  if time_steps:
    repeats, steps = int(config.timing_repeats), int(config.timing_steps)
    path = os.path.join(workdir, 'runs', row.name, 'timing.json')
    timed = timing.cached([path], {'repeats': repeats, 'steps': steps},
                          lambda: timing.time_rows([run_config], num_classes, repeats, steps))[0]
    metrics['step_time'] = timed['step_time']
  return metrics


def candidate_rows(study) -> list[dict[str, Any]]:
  """One dict per trained candidate: its trial number, user attributes and values."""
  return [{'trial': t.number, **t.user_attrs} for t in trained(study)]
