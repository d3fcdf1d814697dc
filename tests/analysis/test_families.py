"""The families study: its rows and default tests, and the inference pass (eval images/s and
batch-1 latency, interleaved, read back by a rerun; other settings are measured again:
test_trainer.py) on two tiny networks of different families."""
import importlib.util
import os

import pytest

from effnet_jax.analysis import families, timing
from effnet_jax.analysis.trainer import Row, small_train_config, with_row

CONFIG = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'ablations',
                      'families.py')


def load_config(arg=None):
  spec = importlib.util.spec_from_file_location('families_config', CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_rows_differ_only_in_model_and_overrides():
  config = load_config()
  rows = families.family_rows(config)
  assert [r.name for r in rows] == ['efficientnetv2', 'rexnet', 'resnet', 'swin']
  assert rows[3].changes == {'model': 'swin_tiny_patch4_window7_224'}
  assert rows[3].overrides['window_size'] == 4 and rows[2].overrides == {'phi': -14.0}
  assert families.family_tests(config) == [
      'accuracy: efficientnetv2 > rexnet', 'accuracy: efficientnetv2 > resnet',
      'accuracy: efficientnetv2 > swin', 'train_seconds: efficientnetv2 < swin']
  config.networks = ('efficientnetv2', 'vit')
  with pytest.raises(ValueError, match="'vit' has no entry in models"):
    families.family_rows(config)


def test_inference_pass_measures_every_row_and_is_read_back(tmp_path):
  base = small_train_config('efficientnet_b0', image_size=16)
  configs = [with_row(base, row) for row in (
      Row('b0', overrides={'phi': -12.0}),
      Row('resnet', overrides={'phi': -16.0}, changes={'model': 'resnet50'}))]
  calls = []

  def compute():
    calls.append(1)
    return timing.time_inference(configs, 10, batch_size=4, repeats=2, steps=3)

  paths = [str(tmp_path / name / 'inference.json') for name in ('b0', 'resnet')]
  settings = {'repeats': 2, 'steps': 3, 'batch_size': 4}
  results = timing.cached(paths, settings, compute)
  for result in results:
    assert result['infer_images_per_sec'] > 0 and not result['cached']
    assert 0 < result['latency_ms'] <= result['latency_p90_ms']
    assert len(result['_samples']['infer_images_per_sec']) == 2  # one per round
    assert len(result['_samples']['latency_ms']) == 6  # every single pass
  again = timing.cached(paths, settings, compute)
  assert len(calls) == 1 and all(r['cached'] for r in again)
  assert [r['latency_ms'] for r in again] == [r['latency_ms'] for r in results]
