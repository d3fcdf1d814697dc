"""Intervals, claims and verdicts of the ablation studies.

A study trains every row with several seeds, so each measured quantity of a row (``accuracy``,
the timing pass's ``step_time`` and ``train_seconds``, a rank ratio) is a small sample. From it:

* :func:`interval`: the mean and its two-sided t interval (95 % by default);
* :func:`difference`: the difference of two rows' means with Welch's t interval (unequal
  variances, Welch–Satterthwaite degrees of freedom);
* a **claim**: the paper's statement a study tests, as one or more :class:`ClaimTest` strings,
  ``'<metric>: <row> > <row>'`` or ``'<metric>: <row> < <row>'``, optionally with a margin,
  ``'accuracy: progressive > fixed - 0.005'`` (non-inferiority: no worse than 0.5 points);
* a **verdict** per test from the difference's interval — *reproduced* when the whole interval
  lies on the claimed side of the margin, *contradicted* when it lies wholly on the other side,
  *inconclusive* when it straddles it (or a row has a single sample: no interval) — and per
  claim: contradicted if any test is, reproduced if every test is, else inconclusive.

The intervals are over the training randomness (initialization, data order, augmentation) on a
fixed test set; they do not include the test set's own sampling error.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Sequence

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_JUDGED = (
    'reproduced', 'contradicted', 'inconclusive', 'not judged')
LEVEL = 0.95


def t_quantile(level: float, df: float) -> float:
  """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
  from scipy import stats  # a dependency of jax
  return float(stats.t.ppf(0.5 + level / 2, df))


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean (or a difference of means) with its confidence interval ``[low, high]``; with a
  single sample the interval is unknown (``nan``)."""
  mean: float
  low: float
  high: float
  n: int

  @property
  def half(self) -> float:
    return (self.high - self.low) / 2

  @property
  def known(self) -> bool:
    return not math.isnan(self.half)

  def format(self, scale: float = 1.0, digits: int = 2) -> str:
    if not self.known:
      return f'{scale * self.mean:.{digits}f} (n={self.n}, no interval)'
    return f'{scale * self.mean:.{digits}f} ± {scale * self.half:.{digits}f}'


def _moments(values: Sequence[float]) -> tuple[int, float, float]:
  values = [float(v) for v in values]
  if not values:
    raise ValueError('an interval needs at least one value')
  n = len(values)
  mean = math.fsum(values) / n
  var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
  return n, mean, var


def interval(values: Sequence[float], level: float = LEVEL) -> Interval:
  """The mean of ``values`` and its t interval (``nan`` bounds for a single value)."""
  n, mean, var = _moments(values)
  if n < 2:
    return Interval(mean, math.nan, math.nan, n)
  half = t_quantile(level, n - 1) * math.sqrt(var / n)
  return Interval(mean, mean - half, mean + half, n)


def difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
  """``mean(a) - mean(b)`` with Welch's t interval; ``n`` is the smaller sample's size."""
  na, ma, va = _moments(a)
  nb, mb, vb = _moments(b)
  mean = ma - mb
  if min(na, nb) < 2:
    return Interval(mean, math.nan, math.nan, min(na, nb))
  se2 = va / na + vb / nb
  if se2 == 0:  # both samples constant: the difference is exact
    return Interval(mean, mean, mean, min(na, nb))
  df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
  half = t_quantile(level, df) * math.sqrt(se2)
  return Interval(mean, mean - half, mean + half, min(na, nb))


_TEST = re.compile(r'^\s*(?P<metric>\w+)\s*:\s*(?P<left>[\w.\-]+)\s*(?P<op>[<>]=?)\s*'
                   r'(?P<right>[\w.\-]+)(?:\s+(?P<sign>[+-])\s*(?P<margin>\d+(?:\.\d*)?))?\s*$')


@dataclasses.dataclass(frozen=True)
class ClaimTest:
  """``metric(left) op metric(right) [+/- margin]``; ``op`` is ``>`` or ``<`` (``>=``, ``<=``
  read the same: an interval cannot tell them apart)."""
  text: str
  metric: str
  left: str
  op: str
  right: str
  offset: float  # the claim is: left - right  op  offset

  @classmethod
  def parse(cls, text: str) -> 'ClaimTest':
    match = _TEST.match(text)
    if not match:
      raise ValueError(f'claim test {text!r}: expected "<metric>: <row> > <row>" or '
                       f'"<metric>: <row> < <row>", optionally "+ <margin>" or "- <margin>", '
                       f'e.g. "accuracy: progressive > fixed - 0.005"')
    margin = float(match['margin'] or 0.0)
    offset = -margin if match['sign'] == '-' else margin
    return cls(text.strip(), match['metric'], match['left'], match['op'][0], match['right'],
               offset)


@dataclasses.dataclass(frozen=True)
class Judgement:
  test: ClaimTest
  difference: Interval
  verdict: str
  reason: str


def judge(test: ClaimTest, samples: dict[str, dict[str, Sequence[float]]],
          level: float = LEVEL) -> Judgement:
  """The verdict of one test from the rows' samples (``samples[row][metric]``)."""
  for row in (test.left, test.right):
    if row not in samples:
      raise ValueError(f'claim test {test.text!r}: no row {row!r}; the rows are '
                       f'{sorted(samples)}')
    if test.metric not in samples[row]:
      raise ValueError(f'claim test {test.text!r}: row {row!r} has no samples of '
                       f'{test.metric!r}; it has {sorted(samples[row])}')
  diff = difference(samples[test.left][test.metric], samples[test.right][test.metric], level)
  side = 1.0 if test.op == '>' else -1.0
  if not diff.known:
    return Judgement(test, diff, INCONCLUSIVE, f'n={diff.n}: a single sample has no interval')
  low, high = side * (diff.low - test.offset), side * (diff.high - test.offset)
  if side < 0:
    low, high = high, low
  if low > 0:
    verdict = REPRODUCED
  elif high < 0:
    verdict = CONTRADICTED
  else:
    verdict = INCONCLUSIVE
  where = f'{test.left} - {test.right} = {diff.mean:.4g}, {level:.0%} interval [{diff.low:.4g}, {diff.high:.4g}]'
  return Judgement(test, diff, verdict, where)


def overall(judgements: Sequence[Judgement]) -> str:
  """Contradicted if any test is, reproduced if all are, else inconclusive."""
  verdicts = [j.verdict for j in judgements]
  if not verdicts:
    return NOT_JUDGED
  if CONTRADICTED in verdicts:
    return CONTRADICTED
  return REPRODUCED if all(v == REPRODUCED for v in verdicts) else INCONCLUSIVE


def judge_claim(tests: Sequence[str], samples: dict[str, dict[str, Sequence[float]]],
                level: float = LEVEL) -> tuple[str, list[Judgement]]:
  judgements = [judge(ClaimTest.parse(t), samples, level) for t in tests]
  return overall(judgements), judgements
