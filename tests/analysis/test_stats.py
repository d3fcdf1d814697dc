"""The interval and verdict arithmetic of the studies (analysis/stats.py)."""
import math

import pytest
from scipy import stats as scipy_stats

from effnet_jax.analysis.stats import (CONTRADICTED, INCONCLUSIVE, NOT_JUDGED, REPRODUCED, ClaimTest,
                                       difference, interval, judge, judge_claim, overall)


def test_interval_is_the_t_interval_of_the_mean():
  values = [0.70, 0.72, 0.74]
  i = interval(values)
  assert i.mean == pytest.approx(0.72) and i.n == 3
  # s = 0.02, t(0.975, 2) = 4.3027: half = 4.3027 * 0.02 / sqrt(3)
  assert i.half == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
  assert (i.low, i.high) == pytest.approx((0.72 - i.half, 0.72 + i.half))
  assert interval(values, level=0.5).half < i.half  # a lower level, a narrower interval
  assert interval([0.5, 0.5, 0.5]).half == 0.0


def test_a_single_value_has_no_interval():
  i = interval([0.8])
  assert i.mean == 0.8 and not i.known and math.isnan(i.low)
  assert i.format(100) == '80.00 (n=1, no interval)'
  with pytest.raises(ValueError, match='at least one'):
    interval([])


def test_difference_is_welchs_interval():
  a, b = [0.80, 0.82, 0.81, 0.83], [0.70, 0.75, 0.72]
  d = difference(a, b)
  expected = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
  assert d.mean == pytest.approx(sum(a) / 4 - sum(b) / 3)
  assert (d.low, d.high) == pytest.approx((expected.low, expected.high), rel=1e-9)
  assert d.n == 3
  exact = difference([1.0, 1.0], [0.5, 0.5])  # both constant: the difference is exact
  assert (exact.low, exact.mean, exact.high) == (0.5, 0.5, 0.5)
  assert not difference([1.0], [0.5, 0.6]).known


@pytest.mark.parametrize('text, metric, left, op, right, offset', [
    ('accuracy: compound_phi1 > width_phi1', 'accuracy', 'compound_phi1', '>', 'width_phi1', 0.0),
    ('step_time: stages1-3 < none', 'step_time', 'stages1-3', '<', 'none', 0.0),
    ('accuracy: progressive > fixed - 0.005', 'accuracy', 'progressive', '>', 'fixed', -0.005),
    ('rank_ratio: silu_x6 >= linear_x6 + 0.1', 'rank_ratio', 'silu_x6', '>', 'linear_x6', 0.1),
    ('accuracy: a1.2_b1.1_g1.15 > a1_b1.2_g1.15', 'accuracy', 'a1.2_b1.1_g1.15', '>',
     'a1_b1.2_g1.15', 0.0),
])
def test_tests_parse(text, metric, left, op, right, offset):
  t = ClaimTest.parse(text)
  assert (t.metric, t.left, t.op, t.right, t.offset) == (metric, left, op, right, offset)


@pytest.mark.parametrize('text', ['accuracy compound > width', 'accuracy: a = b',
                                  'accuracy: a > b * 2', ': a > b'])
def test_a_malformed_test_names_the_form(text):
  with pytest.raises(ValueError, match='expected "<metric>: <row> > <row>"'):
    ClaimTest.parse(text)


SAMPLES = {'high': {'accuracy': [0.80, 0.81, 0.82], 'step_time': [1.0, 1.1, 1.05]},
           'low': {'accuracy': [0.70, 0.71, 0.72], 'step_time': [2.0, 2.1, 2.05]},
           'noisy': {'accuracy': [0.60, 0.80, 0.95]},
           'one': {'accuracy': [0.9]}}


@pytest.mark.parametrize('text, verdict', [
    ('accuracy: high > low', REPRODUCED),
    ('accuracy: low > high', CONTRADICTED),
    ('accuracy: noisy > low', INCONCLUSIVE),
    ('step_time: high < low', REPRODUCED),
    ('step_time: low < high', CONTRADICTED),
    # margins: no worse than 0.15 below (reproduced), at least 0.15 above (contradicted)
    ('accuracy: low > high - 0.15', REPRODUCED),
    ('accuracy: high > low + 0.15', CONTRADICTED),
    ('accuracy: high > low + 0.1', INCONCLUSIVE),  # the interval straddles 0.1
    ('accuracy: one > low', INCONCLUSIVE),  # a single sample: no interval
])
def test_a_verdict_comes_from_where_the_interval_lies(text, verdict):
  judgement = judge(ClaimTest.parse(text), SAMPLES)
  assert judgement.verdict == verdict, judgement.reason


def test_a_test_naming_a_missing_row_or_metric_is_an_error():
  with pytest.raises(ValueError, match="no row 'nope'"):
    judge(ClaimTest.parse('accuracy: nope > low'), SAMPLES)
  with pytest.raises(ValueError, match="no samples of 'reward'"):
    judge(ClaimTest.parse('reward: high > low'), SAMPLES)


def test_a_claim_is_contradicted_by_any_test_and_reproduced_by_all():
  assert overall([]) == NOT_JUDGED
  verdict, judgements = judge_claim(['accuracy: high > low', 'step_time: high < low'], SAMPLES)
  assert verdict == REPRODUCED and len(judgements) == 2
  assert judge_claim(['accuracy: high > low', 'accuracy: noisy > low'], SAMPLES)[0] == INCONCLUSIVE
  assert judge_claim(['accuracy: noisy > low', 'accuracy: low > high'], SAMPLES)[0] == CONTRADICTED
