"""Step time and train-step seconds from a run's metric records."""
import pytest

from effnet_jax.analysis.trainer import Row, seconds_at, small_train_config, step_time, with_row

RECORDS = [{'event': 'compile', 'seconds': 30.0},
           {'step': 10, 'train/images_per_sec': 100.0},  # warm-up: 0.64 s / step at batch 64
           {'step': 20, 'train/images_per_sec': 640.0},  # 0.1 s / step
           {'step': 25, 'eval/top1': 0.5},
           {'step': 30, 'train/images_per_sec': 320.0},  # 0.2 s / step
           {'step': 40, 'train/images_per_sec': 640.0}]


def test_step_time_is_the_median_after_the_first_interval():
  assert step_time(RECORDS, 64) == pytest.approx(0.1)
  assert step_time(RECORDS[:2], 64) == pytest.approx(0.64)  # a single interval: itself
  with pytest.raises(ValueError, match='log_every_steps'):
    step_time(RECORDS[:1], 64)


def test_train_seconds_add_the_intervals_and_interpolate_inside_one():
  assert seconds_at(RECORDS, 64, 20) == pytest.approx(6.4 + 1.0)
  assert seconds_at(RECORDS, 64, 25) == pytest.approx(7.4 + 5 * 0.2)
  assert seconds_at(RECORDS, 64, 40) == pytest.approx(7.4 + 2.0 + 1.0)


def test_a_row_changes_a_copy_of_the_base_config():
  base = small_train_config()
  config = with_row(base, Row('r', overrides={'width_mult': 0.5, 'stages': (('ir_r1_k3_s1_e1_c16',),)},
                              changes={'input.image_size': 20, 'optimizer.base_learning_rate': 0.1}))
  assert config.model_overrides.width_mult == 0.5 and config.input.image_size == 20
  assert config.model_overrides.stages == (('ir_r1_k3_s1_e1_c16',),)
  assert base.model_overrides.width_mult is None and base.input.image_size == 24
  with pytest.raises(KeyError, match="image_size"):
    with_row(base, Row('typo', changes={'image_sise': 20}))
