"""The NAS reward and the result CSV."""
import csv

import pytest

from effnet_jax.analysis.table import add_rewards, nas_reward, write_csv


def test_reward_is_accuracy_times_powers_of_time_and_size():
  assert nas_reward(0.8, 1.0, 1.0) == pytest.approx(0.8)
  assert nas_reward(0.8, 2.0, 1.0) == pytest.approx(0.8 * 2 ** -0.07)
  assert nas_reward(0.8, 1.0, 3.0) == pytest.approx(0.8 * 3 ** -0.05)
  assert nas_reward(0.8, 0.5, 1.0) > nas_reward(0.8, 1.0, 1.0) > nas_reward(0.8, 1.0, 2.0)
  with pytest.raises(ValueError, match='positive'):
    nas_reward(0.8, 0.0, 1.0)


def test_rewards_relative_to_the_baseline_keep_the_paper_ranking():
  rows = [{'accuracy': 0.80, 'step_time': 0.1, 'params': 1e6},
          {'accuracy': 0.81, 'step_time': 0.2, 'params': 2e6},
          {'accuracy': 0.79, 'step_time': 0.05, 'params': 5e5}]
  add_rewards(rows)
  assert rows[0]['reward'] == pytest.approx(0.80)
  assert rows[1]['step_time_norm'] == pytest.approx(2.0) and rows[2]['params_norm'] == 0.5
  raw = [nas_reward(r['accuracy'], r['step_time'], r['params']) for r in rows]
  assert sorted(range(3), key=raw.__getitem__) == sorted(range(3), key=lambda i: rows[i]['reward'])


def test_csv_has_every_column_of_every_row(tmp_path):
  path = write_csv([{'name': 'a', 'accuracy': 0.5}, {'name': 'b', 'widths': [8, 16]}],
                   str(tmp_path / 'sub' / 'results.csv'))
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['name', 'accuracy', 'widths']
  assert rows[1] == {'name': 'b', 'accuracy': '', 'widths': '8 16'}


def test_list_settings_are_tuples_and_a_comma_string_names_the_tuple_spelling():
  from effnet_jax.analysis.table import as_tuple
  assert as_tuple((1, 2), 'phis', float) == (1.0, 2.0) and as_tuple(None, 'images', str) == ()
  with pytest.raises(ValueError, match=r"phis='1,2': give a tuple, e.g. --config.phis=\"\('1', '2'\)\""):
    as_tuple('1,2', 'phis', float)


def test_differences_to_the_baseline_carry_welchs_interval_and_rewards_one_per_seed():
  from effnet_jax.analysis.stats import difference
  from effnet_jax.analysis.table import add_differences
  rows = [{'accuracy': 0.8, 'step_time': 0.1, 'params': 1e6,
           '_samples': {'accuracy': [0.79, 0.80, 0.81]}},
          {'accuracy': 0.83, 'step_time': 0.2, 'params': 1e6,
           '_samples': {'accuracy': [0.82, 0.83, 0.84]}}]
  add_differences(add_rewards(rows), 0.95)
  assert 'delta' not in rows[0]  # the baseline itself
  expected = difference([0.82, 0.83, 0.84], [0.79, 0.80, 0.81])
  assert (rows[1]['delta'], rows[1]['delta_low'], rows[1]['delta_high']) == pytest.approx(
      (0.03, expected.low, expected.high))
  assert rows[1]['_samples']['reward'] == pytest.approx(
      [nas_reward(a, 2.0, 1.0) for a in (0.82, 0.83, 0.84)])
  assert rows[1]['reward_low'] < rows[1]['reward'] < rows[1]['reward_high']
