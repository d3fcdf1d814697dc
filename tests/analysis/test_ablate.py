"""Every ablation config documents itself; one experiment end to end through the trainer."""
import csv
import glob
import importlib.util
import json
import os

import pytest

from effnet_jax.analysis.run import EXPERIMENTS, run_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', 'ablations', '*.py')))


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_one_config_per_experiment():
  kinds = {load(p).get_config().experiment for p in CONFIGS}
  assert kinds == set(EXPERIMENTS)


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads_at_both_scales_and_documents_itself(path):
  module = load(path)
  doc = module.__doc__
  assert 'python -m effnet_jax.tools.ablate --config configs/ablations/' in doc
  assert 'scale=imagenet' in doc and 'Expected' in doc
  for arg in (None, 'scale=small', 'scale=imagenet'):
    config = module.get_config(arg)
    config.lock()
    assert config.experiment in EXPERIMENTS and config.name
    if config.train is not None:
      source = 'tfds' if arg == 'scale=imagenet' else 'embedded'
      assert config.train.data.source == source
  with pytest.raises(ValueError, match='valid'):
    module.get_config('scale=huge')


@pytest.mark.long
def test_fused_placement_end_to_end_and_read_back_on_rerun(tmp_path, embedded_data_dir):
  config = load(os.path.join(REPO, 'configs', 'ablations', 'fused_placement.py')).get_config()
  config.fused_stages = (0,)
  config.seeds = 1
  config.timing_repeats, config.timing_steps = 2, 1
  config.tests = ('accuracy: none > none - 0.01',)
  config.train.update_from_flattened_dict({
      'data.data_dir': embedded_data_dir, 'data.eval_split': 'test[:16]', 'input.image_size': 16,
      'input.eval_image_size': 16, 'batch_size': 8, 'num_train_steps': 2, 'log_every_steps': 1,
      'progress_bar': False, 'async_checkpoints': False,
      'model_overrides.depthwise_impl': 'xla'})  # compiles faster than unrolled
  config.lock()
  rows = run_config(config, str(tmp_path))
  with open(tmp_path / 'results.csv') as f:
    saved = list(csv.DictReader(f))
  assert [r['name'] for r in saved] == ['none'] == [r['name'] for r in rows]
  assert not any(k.startswith('_') for k in saved[0])  # samples stay in memory
  row = rows[0]
  assert row['params'] > 0 and row['macs'] > 0 and 0 <= row['accuracy'] <= 1
  assert row['seeds'] == 1 and row['step_time'] > 0 and len(row['_samples']['step_time']) == 2
  assert row['reward'] == pytest.approx(row['accuracy'])  # the baseline's own reward
  assert os.path.getsize(tmp_path / 'fused_placement.png') > 1000
  first = tmp_path / 'runs' / 'none' / 'seed0'
  assert os.path.isdir(first / 'checkpoints')
  # one seed: no interval, so the claim's test cannot be decided
  verdict = json.loads((tmp_path / 'verdict.json').read_text())
  assert verdict['verdict'] == 'inconclusive' and verdict['tests'][0]['low'] is None
  assert 'INCONCLUSIVE' in (tmp_path / 'verdict.md').read_text()

  with open(tmp_path / 'seeds.csv') as f:
    assert [int(s['seed']) for s in csv.DictReader(f)] == [config.train.seed]

  stamp = os.path.getmtime(first / 'metrics.jsonl')
  rerun = run_config(config, str(tmp_path))  # finished runs and the timing are read back
  assert os.path.getmtime(first / 'metrics.jsonl') == stamp
  assert rerun[0]['accuracy'] == row['accuracy']
  assert os.path.exists(tmp_path / 'runs' / 'none' / 'timing.json')
  assert rerun[0]['_samples']['step_time'] == row['_samples']['step_time']
  # (more seeds training only the new ones: tests/analysis/test_trainer.py)


def test_a_malformed_claim_test_fails_before_training(tmp_path):
  config = load(os.path.join(REPO, 'configs', 'ablations', 'fused_placement.py')).get_config()
  config.tests = ('accuracy none > all',)
  with pytest.raises(ValueError, match='expected "<metric>: <row> > <row>"'):
    run_config(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'runs')


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_every_study_states_a_claim_and_its_default_tests_parse(path):
  from effnet_jax.analysis.run import claim_tests
  from effnet_jax.analysis.stats import ClaimTest
  config = load(path).get_config()
  assert len(config.claim) > 20
  tests = claim_tests(config)
  assert tests or config.experiment == 'gradcam'  # a picture, not a measurement
  for text in tests:
    ClaimTest.parse(text)
  if config.train is not None:  # a search trains each candidate once, as the papers
    assert config.seeds == (1 if config.experiment in ('rexnet_search', 'v2_nas') else 3)
