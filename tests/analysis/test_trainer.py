"""Rows, seeds, and train-step seconds from the timing pass."""
import math
import os

import pytest

from effnet_jax.analysis.progressive import mean_curve
from effnet_jax.analysis.timing import seconds_at
from effnet_jax.analysis.trainer import Row, seed_config, seed_dir, small_train_config, with_row

STAGES = [{'start_step': 0, 'end_step': 10, 'image_size': 16, 'step_time': 0.1},
          {'start_step': 10, 'end_step': 30, 'image_size': 32, 'step_time': 0.4}]


def test_train_seconds_add_each_stage_steps_times_its_timed_step():
  assert seconds_at(STAGES, 0) == 0.0
  assert seconds_at(STAGES, 5) == pytest.approx(0.5)
  assert seconds_at(STAGES, 20) == pytest.approx(1.0 + 10 * 0.4)
  assert seconds_at(STAGES, 30) == seconds_at(STAGES, 99) == pytest.approx(9.0)


def test_the_seeds_curves_average_per_evaluation_step():
  curves = [[{'step': 10, 'epoch': 0.5, 'train_seconds': 1.0, 'accuracy': 0.5},
             {'step': 20, 'epoch': 1.0, 'train_seconds': 2.0, 'accuracy': 0.7}],
            [{'step': 10, 'epoch': 0.5, 'train_seconds': 1.0, 'accuracy': 0.6},
             {'step': 20, 'epoch': 1.0, 'train_seconds': 2.0, 'accuracy': 0.8},
             {'step': 20, 'epoch': 1.0, 'train_seconds': 2.0, 'accuracy': 0.8}]]  # final too
  points = mean_curve(curves, 0.95)
  assert [p['step'] for p in points] == [10, 20]
  assert points[1]['accuracy'] == pytest.approx(0.75) and points[1]['seeds'] == 2
  assert points[1]['accuracy_low'] < 0.75 < points[1]['accuracy_high']


def test_a_row_seed_offsets_the_base_seed():
  base = small_train_config()
  assert seed_config(base, Row('r'), 2).seed == base.seed + 2
  assert seed_dir('/w', 'r', 2) == '/w/runs/r/seed2'


def test_a_row_changes_a_copy_of_the_base_config():
  base = small_train_config()
  config = with_row(base, Row('r', overrides={'width_mult': 0.5, 'stages': (('ir_r1_k3_s1_e1_c16',),)},
                              changes={'input.image_size': 20, 'optimizer.base_learning_rate': 0.1}))
  assert config.model_overrides.width_mult == 0.5 and config.input.image_size == 20
  assert config.model_overrides.stages == (('ir_r1_k3_s1_e1_c16',),)
  assert base.model_overrides.width_mult is None and base.input.image_size == 24
  with pytest.raises(KeyError, match="image_size"):
    with_row(base, Row('typo', changes={'image_sise': 20}))


def test_the_timing_pass_interleaves_the_rows_and_sums_stage_times(monkeypatch, tmp_path):
  from types import SimpleNamespace

  from effnet_jax.analysis import timing
  visits = []

  class FakeRow(timing._Row):  # no compilation: stages and a clock that counts visits
    def __init__(self, config, num_classes):
      self.config = SimpleNamespace(batch_size=8)
      self.name = config
      self.run = SimpleNamespace(stages=[
          SimpleNamespace(num_steps=10, start_step=0, end_step=10, image_size=16),
          SimpleNamespace(num_steps=20, start_step=10, end_step=30, image_size=32)
      ][:2 if config == 'curriculum' else 1])

    def time_stage(self, index, warmup, steps):
      visits.append((self.name, index))
      return 0.1 * (index + 1) + 0.001 * len(visits)

  monkeypatch.setattr(timing, '_Row', FakeRow)
  rows = timing.time_rows(['fixed', 'curriculum'], 10, repeats=2, steps=3)
  assert visits == [('fixed', 0), ('curriculum', 0), ('curriculum', 1)] * 2
  fixed, curriculum = rows
  assert fixed['_samples']['step_time'] == pytest.approx([0.101, 0.104])
  # per round: 10 steps at stage 0's time + 20 at stage 1's
  assert curriculum['_samples']['train_seconds'] == pytest.approx(
      [10 * 0.102 + 20 * 0.203, 10 * 0.105 + 20 * 0.206])
  assert [s['image_size'] for s in curriculum['_stages']] == [16, 32]
  # read back when every row has a record of the same repeats and steps; else all retimed
  paths = [str(tmp_path / 'fixed.json'), str(tmp_path / 'curriculum.json')]
  first = timing.cached_time_rows(['fixed', 'curriculum'], 10, paths, 2, 3)
  assert not first[0]['cached'] and len(visits) == 12
  again = timing.cached_time_rows(['fixed', 'curriculum'], 10, paths, 2, 3)
  assert again[0]['cached'] and len(visits) == 12
  assert again[1]['_samples'] == first[1]['_samples']
  timing.cached_time_rows(['fixed', 'curriculum'], 10, paths, 3, 3)  # other repeats: retimed
  assert len(visits) == 12 + 9


def test_more_seeds_train_only_the_new_ones_and_a_row_aggregates_its_seeds(monkeypatch, tmp_path):
  import json
  import ml_collections

  from effnet_jax.analysis import timing, trainer
  from effnet_jax.train import loop
  trained = []

  def fake_train(config, workdir):  # a finished run: its final record, accuracy from the seed
    trained.append((os.path.basename(os.path.dirname(workdir)), config.seed))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      f.write(json.dumps({'step': 2, 'final': True, 'eval/top1': 0.5 + 0.01 * config.seed,
                          'wall_seconds': 1.0}) + '\n')

  def fake_timing(configs, num_classes, paths, repeats, steps):
    return [{'step_time': 0.1, 'images_per_sec': 80.0, 'train_seconds': 0.2, 'cached': False,
             '_samples': {'step_time': [0.1] * repeats, 'train_seconds': [0.2] * repeats},
             '_stages': []} for _ in configs]

  monkeypatch.setattr(loop, 'train_and_evaluate', fake_train)
  monkeypatch.setattr(timing, 'cached_time_rows', fake_timing)
  monkeypatch.setattr(trainer, 'model_cost', lambda config, n: {'params': 10, 'macs': 20,
                                                                'eval_image_size': 16})
  study = ml_collections.ConfigDict({'train': small_train_config(), 'seeds': 1, 'level': 0.95,
                                     'timing_repeats': 2, 'timing_steps': 1})
  rows = [Row('a'), Row('b', overrides={'width_mult': 0.5})]
  first = trainer.train_rows(study, rows, str(tmp_path), 10)
  base_seed = study.train.seed
  assert trained == [('a', base_seed), ('b', base_seed)]
  assert first[0]['seeds'] == 1 and math.isnan(first[0]['accuracy_low'])
  study.seeds = 3
  again = trainer.train_rows(study, rows, str(tmp_path), 10)
  assert trained[2:] == [('a', base_seed + 1), ('b', base_seed + 1),
                         ('a', base_seed + 2), ('b', base_seed + 2)]  # seed-major, new only
  a = again[0]
  assert a['accuracy_seeds'] == pytest.approx([0.5 + 0.01 * (base_seed + k) for k in range(3)])
  assert a['accuracy'] == pytest.approx(0.5 + 0.01 * (base_seed + 1))
  assert a['accuracy_low'] < a['accuracy'] < a['accuracy_high']
  assert a['run_dir'] == seed_dir(str(tmp_path), 'a', 0)
  assert a['_samples']['step_time'] == [0.1, 0.1] and a['step_time'] == 0.1
  study.seeds = 0
  with pytest.raises(ValueError, match='seeds >= 1'):
    trainer.train_rows(study, rows, str(tmp_path), 10)
