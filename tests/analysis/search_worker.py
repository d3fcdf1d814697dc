"""A search worker over a toy space (six candidates x = 0..5, accuracy x / 10), for the tests of
the study sharing and resuming in effnet_jax/analysis/search.py: each evaluation appends
"<pid> <key>" to a log file, then sleeps, so tests can count trainings and kill a worker
mid-training.

  python search_worker.py WORKDIR WORKER CANDIDATES SLEEP_SECONDS [GRACE_SECONDS]
"""
import os
import sys
import time

import ml_collections

from effnet_jax.analysis import search


def main(workdir, worker, candidates, sleep, grace='30'):
  config = ml_collections.ConfigDict(dict(
      storage='', worker=int(worker), seed=0, startup=2, heartbeat_seconds=1,
      heartbeat_grace=int(grace)))
  study = search.open_study(config, workdir, 'toy', ('maximize',), 'random')

  def propose(trial):
    x = trial.suggest_int('x', 0, 5)
    return search.Candidate(key=f'x={x}', overrides={}, info={'x': x})

  def evaluate(candidate):
    with open(os.path.join(workdir, 'evaluations.log'), 'a') as f:
      f.write(f'{os.getpid()} {candidate.key}\n')
    time.sleep(float(sleep))
    return {'accuracy': candidate.info['x'] / 10}

  search.run_worker(study, propose, evaluate, int(candidates), lambda m: m['accuracy'],
                    poll_seconds=0.5)
  print('done', len(search.trained(study)), flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:])
