"""The architecture searches: study sharing between worker processes, resuming after a kill (on
a toy space, tests/analysis/search_worker.py), the ReXNet family, its budget and its analysis,
the NAS space and rewards, and the NAS end to end through the trainer at a tiny size (two
candidates; the
channel search trains its candidates through the same functions)."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from effnet_jax.analysis import channel_search, nas, search
from effnet_jax.analysis.channels import ChannelModel, block_widths
from effnet_jax.analysis.run import run_config
from effnet_jax.models import build_model, get_model_config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, 'search_worker.py')


def worker(workdir, index, candidates, sleep, grace=30):
  return subprocess.Popen([sys.executable, WORKER, str(workdir), str(index), str(candidates),
                           str(sleep), str(grace)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def evaluations(workdir):
  path = os.path.join(workdir, 'evaluations.log')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [line.split() for line in f if line.strip()]


def toy_study(workdir):
  import ml_collections
  config = ml_collections.ConfigDict(dict(storage='', worker=0, seed=0, startup=2,
                                          heartbeat_seconds=1, heartbeat_grace=30))
  return search.open_study(config, str(workdir), 'toy', ('maximize',), 'random')


def test_two_workers_share_one_study_and_never_train_a_candidate_twice(tmp_path):
  # 5 of the 6 candidates between two workers: proposals collide often
  procs = [worker(tmp_path, k, 5, 0.5) for k in (0, 1)]
  outputs = [p.communicate(timeout=120)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs
  done = evaluations(tmp_path)
  keys = [key for _, key in done]
  assert len(keys) == len(set(keys)), f'a candidate trained twice: {done}'
  assert 5 <= len(keys) <= 6  # two last candidates may start at the very same moment
  assert len({pid for pid, _ in done}) == 2  # both workers trained
  trained = search.trained(toy_study(tmp_path))
  assert sorted(t.user_attrs['candidate'] for t in trained) == sorted(keys)
  # a rerun finds the study complete: it trains nothing
  rerun = worker(tmp_path, 0, 5, 0.5)
  assert 'nothing to train' in rerun.communicate(timeout=60)[0]
  assert len(evaluations(tmp_path)) == len(done)


def test_a_killed_worker_resumes_without_retraining_finished_candidates(tmp_path):
  first = worker(tmp_path, 0, 3, 4.0, grace=2)
  deadline = time.time() + 60
  while len(evaluations(tmp_path)) < 2 and time.time() < deadline:  # the 2nd is training
    time.sleep(0.1)
  first.send_signal(signal.SIGKILL)
  first.communicate()
  finished, killed = [key for _, key in evaluations(tmp_path)]
  resumed = worker(tmp_path, 0, 3, 0.2, grace=2)
  output = resumed.communicate(timeout=120)[0]
  assert resumed.returncode == 0, output
  keys = [key for _, key in evaluations(tmp_path)]
  assert keys.count(finished) == 1  # never retrained
  assert keys.count(killed) == 2  # re-proposed after its heartbeat went stale, trained again
  trained = search.trained(toy_study(tmp_path))
  assert len(trained) == 3 and killed in {t.user_attrs['candidate'] for t in trained}


def test_a_diverged_candidate_fails_and_is_not_retried(tmp_path):
  study = toy_study(tmp_path)
  trainings = []

  def propose(trial):
    x = trial.suggest_int('x', 0, 5)
    return search.Candidate(key=f'x={x}', overrides={}, info={})

  def evaluate(candidate):
    trainings.append(candidate.key)
    if len(trainings) == 1:
      raise FloatingPointError('loss is nan at step 3')
    return {'accuracy': 0.5}

  search.run_worker(study, propose, evaluate, 2, lambda m: m['accuracy'], log=lambda s: None)
  failed = [t for t in study.get_trials() if t.state.name == 'FAIL']
  assert len(failed) == 1 and 'nan' in failed[0].user_attrs['diverged']
  assert search.retry_failed(study) == 0 and len(search.trained(study)) == 2
  assert trainings.count(failed[0].user_attrs['candidate']) == 1


def test_piecewise_family_and_nonlinearity():
  assert channel_search.piecewise_positions(5, [], [1.0]) == [0.0, 0.25, 0.5, 0.75, 1.0]
  f = channel_search.piecewise_positions(5, [0.5], [0.0, 1.0])  # flat, then rising
  assert f == [0.0, 0.0, 0.0, 0.5, 1.0]
  with pytest.raises(search.Infeasible):
    channel_search.piecewise_positions(5, [0.5], [0.0, 0.0])
  assert channel_search.nonlinearity([16, 20, 24, 28]) == pytest.approx(0.0, abs=1e-12)
  assert channel_search.nonlinearity([19] * 9 + [20]) < 0.02  # flat is a line too
  assert channel_search.nonlinearity([16, 16, 16, 64]) > 0.3
  groups = channel_search.groups([{'accuracy': a} for a in np.linspace(0, 1, 40)], 30)
  assert [len(g) for g in groups.values()] == [4, 4, 4]
  assert groups['top'][0]['accuracy'] == 1.0 and groups['bottom'][-1]['accuracy'] == 0.0
  thirds = channel_search.groups([{'accuracy': a} for a in range(7)], 30)
  assert [len(g) for g in thirds.values()] == [2, 2, 2]


def test_sampled_networks_are_at_the_budget():
  model = ChannelModel(0.5, 0.2, 32, 10)
  target = model.macs()
  for b, f in ((8.0, [0.0, 0.3, 1.0, 1.0, 1.0, 1.0]), (20.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])):
    a, widths, macs = channel_search.solve_rise(model, f, b, target, 0.02)
    assert abs(macs / target - 1) <= 0.02 and widths[0] == round(b) and a > 0
  with pytest.raises(search.Infeasible, match='over the budget'):
    channel_search.solve_rise(model, [0.0] * 5 + [1.0], 400.0, target, 0.02)


class Fixed:
  """A trial that answers from a dict."""

  def __init__(self, params):
    self.params, self.user_attrs = params, {}

  def suggest_categorical(self, name, choices):
    assert self.params[name] in choices
    return self.params[name]

  def suggest_float(self, name, low, high):
    assert low <= self.params[name] <= high
    return self.params[name]


def test_nas_space_holds_the_base_network_and_builds_every_choice():
  import ml_collections
  config = ml_collections.ConfigDict(dict(
      base='efficientnetv2_b0', phi=-5.0, ops=('fu', 'ir'), kernels=(3, 5), expansions=(1, 4, 6),
      layer_deltas=(-1, 0, 1), channel_mults=(1.0,)))
  space = nas.NasSpace(config)
  base = get_model_config('efficientnetv2_b0', phi=-5.0)

  candidate = space.propose(Fixed(space.base_params()))
  assert candidate.info['base']
  built = get_model_config('efficientnetv2_b0', **candidate.overrides)
  assert built.resolved_arch() == base.resolved_arch()  # the same blocks, unscaled strings
  assert candidate.info['fused_early'] == 1.0  # V2: fused stages 1-3, MBConv 4-6
  other = dict(space.base_params(), s0_op='ir', s5_op='fu', s5_kernel=5, s5_expansion=1,
               s5_layers=1)
  candidate = space.propose(Fixed(other))
  assert not candidate.info['base'] and candidate.info['fused_early'] == pytest.approx(1 / 3)
  assert candidate.key.split()[-1] == 'fu_r5_k5_s2_e1_c120'
  build_model(get_model_config('efficientnetv2_b0', **candidate.overrides))


def test_rewards_are_relative_to_the_base():
  rows = [{'base': True, 'accuracy': 0.8, 'step_time': 0.02, 'params': 1e6},
          {'accuracy': 0.8, 'step_time': 0.04, 'params': 1e6}]
  nas.add_reward(rows, -0.07, -0.05)
  assert rows[0]['reward'] == pytest.approx(0.8)
  assert rows[1]['reward'] == pytest.approx(0.8 * 2 ** -0.07)
  with pytest.raises(ValueError, match='base'):
    nas.add_reward(rows[1:], -0.07, -0.05)


def tiny(config, embedded_data_dir):
  config.candidates = 3
  config.heartbeat_grace = 5
  config.train.update_from_flattened_dict({
      'data.data_dir': embedded_data_dir, 'data.eval_split': 'test[:16]', 'input.image_size': 16,
      'input.eval_image_size': 16, 'batch_size': 8, 'num_train_steps': 2, 'log_every_steps': 1,
      'progress_bar': False, 'async_checkpoints': False,
      'model_overrides.depthwise_impl': 'xla'})  # compiles faster than unrolled
  return config


def load_config(name):
  from tests.analysis.test_ablate import load
  return load(os.path.join(REPO, 'configs', 'ablations', f'{name}.py')).get_config()


def test_channel_search_analysis_groups_curves_and_best_model_file(tmp_path):
  # the proposals of the real family at two budgets, with stand-in accuracies (the training of
  # candidates is the same code as the NAS's: test_nas_end_to_end...)
  config = load_config('rexnet_search')
  config.depth_mult, config.macs_tolerance = 0.2, 0.05
  model = ChannelModel(config.width_mult, config.depth_mult, 32, 10)
  rng = np.random.default_rng(0)
  per_budget = {}
  for budget in (0.6, 1.0):
    space = channel_search.ChannelSpace(config, model, budget)
    candidates = []
    for trial in range(3):
      params = {'b': float(rng.uniform(8, 16)), 'knot0': 0.3, 'knot1': 0.7,
                'slope0': 1.0, 'slope1': float(rng.uniform(0, 1)), 'slope2': 1.0}
      candidate = space.propose(Fixed(params))
      assert abs(model.macs(candidate.overrides['stages']) / space.target - 1) <= 0.05
      candidates.append({'trial': trial, 'name': f'c{trial}', 'accuracy': 0.5 + 0.01 * trial,
                         'macs': 0, 'params': 0, 'wall_seconds': 1.0, **candidate.info})
    per_budget[budget] = candidates
  rows = channel_search.write_results(config, str(tmp_path), per_budget)
  assert [r['name'] for r in rows] == [f'{g}-macs{b:g}' for b in (0.6, 1.0)
                                       for g in ('top', 'middle', 'bottom')]
  assert rows[0]['accuracy'] == pytest.approx(0.52) and rows[2]['accuracy'] == pytest.approx(0.5)
  assert len(rows[0]['_samples']['nonlinearity']) == 1  # thirds of 3
  with open(tmp_path / 'candidates.csv') as f:
    table = list(csv.DictReader(f))
  assert [int(r['rank']) for r in table] == [1, 2, 3] * 2
  assert os.path.getsize(tmp_path / 'rexnet_search.png') > 1000
  best = get_model_config(str(tmp_path / 'best_macs1.json'), num_classes=10)
  assert block_widths(best.stages) == per_budget[1.0][-1]['widths']
  assert best.name == 'best_macs1'
  assert channel_search.search_tests(config) == [
      'nonlinearity: top-macs0.6 < bottom-macs0.6', 'nonlinearity: top-macs1 < bottom-macs1']


@pytest.mark.long
def test_nas_end_to_end_with_its_pareto_front_and_best_model(tmp_path, embedded_data_dir):
  config = tiny(load_config('v2_nas'), embedded_data_dir)
  config.phi, config.layer_deltas, config.startup, config.candidates = -12.0, (0,), 1, 2
  config.timing_repeats, config.timing_steps = 1, 1
  config.lock()
  rows = run_config(config, str(tmp_path))
  assert [r['name'] for r in rows[:2]] == ['top', 'bottom']
  with open(tmp_path / 'reward_table.csv') as f:
    table = list(csv.DictReader(f))
  assert len(table) == 2 and sum(r['base'] == 'True' for r in table) == 1
  assert [float(r['reward']) for r in table] == sorted((float(r['reward']) for r in table),
                                                       reverse=True)
  assert any(r['pareto'] == 'True' for r in table)
  base = next(r for r in table if r['base'] == 'True')
  assert float(base['step_time_norm']) == 1.0 and float(base['params_norm']) == 1.0
  assert all(float(r['step_time']) > 0 for r in table)
  mcfg = get_model_config(str(tmp_path / 'best.json'), num_classes=10)
  assert ' '.join(s for stage in mcfg.stages for s in stage) == table[0]['blocks']
  assert os.path.getsize(tmp_path / 'v2_nas.png') > 1000
  runs = sorted(os.listdir(tmp_path / 'runs'))
  stamps = [os.path.getmtime(tmp_path / 'runs' / r / 'seed0' / 'metrics.jsonl') for r in runs]
  rerun = run_config(config, str(tmp_path))  # the study is complete: nothing trains
  assert [r.get('reward') for r in rerun] == [r.get('reward') for r in rows]
  assert [os.path.getmtime(tmp_path / 'runs' / r / 'seed0' / 'metrics.jsonl')
          for r in runs] == stamps


def test_a_model_file_is_a_model_name_everywhere(tmp_path):
  from effnet_jax.models.registry import write_model_file
  stages = (('fu_r1_k3_s1_e1_c8',), ('ir_r1_k5_s2_e4_c16_se0.25',))
  path = write_model_file(str(tmp_path / 'mine.json'), 'efficientnetv2_b0',
                          {'stages': stages, 'width_mult': 1.0})
  config = get_model_config(path, num_classes=3, dropout_rate=0.1)
  assert config.stages == stages and config.num_classes == 3 and config.dropout_rate == 0.1
  assert hash(config)  # nested lists from JSON come back as tuples
  with pytest.raises(ValueError, match='does not exist'):
    get_model_config(str(tmp_path / 'missing.json'))
  (tmp_path / 'bad.json').write_text('{"overrides": {}}')
  with pytest.raises(ValueError, match='expected'):
    get_model_config(str(tmp_path / 'bad.json'))
  with pytest.raises(ValueError, match='unknown model override'):
    write_model_file(str(tmp_path / 'typo.json'), 'efficientnetv2_b0', {'stage': stages})
  assert not os.path.exists(tmp_path / 'typo.json')
