"""ReXNet's channel-configuration search (Han et al., "Rethinking Channel Dimensions for
Efficient Model Design", Sec. 4): random networks whose block widths follow ``c_i = a·f(i) + b``,
each at a MACs budget, trained briefly; then which channel curves the accurate ones follow.

**The family.** ReXNet's blocks (strides, SE, expansion 6, its depth) with block ``i`` of ``D``
outputting ``c_i = round(a·f(x_i) + b)``, ``x_i = i / (D - 1)``. ``f`` is a random monotone
piecewise-linear function with ``segments`` pieces: knots uniform on (0, 1), slopes uniform on
[0, 1] (a piece may be flat: stage-wise-like steps, convex, concave and linear curves are all in
the family), scaled so that ``f(0) = 0`` and ``f(1) = 1``; so ``b`` is the first block's width
and ``a`` the rise to the last. ``b`` is drawn uniformly from ``first_channels``; ``a`` is then
solved (bisection on the exact MACs of the network, ``models.utils.profile``) so the network
lands within ``macs_tolerance`` of the budget — every sample is at the budget, none is
rejected for missing it. A ``b`` so wide that even ``a = 0`` exceeds the budget is infeasible
and drawn again. Budgets are multiples of the MACs of ReXNet's own linear configuration at the
study's width and depth.

**The analysis** (per budget): candidates ranked by top-1; the mean channel curve of the top,
middle and bottom 10 % (thirds below ``min_for_deciles`` candidates); each candidate's
``nonlinearity``, the RMS distance of its widths from their least-squares line over the block
index, relative to the mean width (0: on a line). The paper's claim, tested at every budget:
the top group's curves are closer to a line than the bottom group's. Each budget's best configuration is written as a model file
(``best_macs<budget>.json``), which ``--config.model=`` takes like a registered name.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from effnet_jax.analysis import plots, search, trainer
from effnet_jax.analysis.channels import ChannelModel, channel_widths
from effnet_jax.analysis.table import as_tuple, write_csv
from effnet_jax.models import rexnet
from effnet_jax.models.registry import write_model_file

GROUPS = ('top', 'middle', 'bottom')


def piecewise_positions(depth: int, knots, slopes) -> list[float]:
  """``f(x_i)`` for ``x_i = i / (depth - 1)``: the integral of the piecewise-constant slope
  (``slopes[j]`` between sorted ``knots[j-1]`` and ``knots[j]``), scaled to ``f(1) = 1``."""
  knots = sorted(float(k) for k in knots)
  if len(slopes) != len(knots) + 1:
    raise ValueError(f'{len(slopes)} slopes for {len(knots)} knots; expected one more slope')
  edges = [0.0, *knots, 1.0]

  def integral(x):
    return sum(s * max(0.0, min(x, hi) - lo) for s, lo, hi in zip(slopes, edges, edges[1:]))

  total = integral(1.0)
  if total <= 0:
    raise search.Infeasible('all slopes are zero: f is constant')
  return [integral(i / max(1, depth - 1)) / total for i in range(depth)]


def nonlinearity(widths) -> float:
  """How far a channel curve is from a straight line: the RMS residual of the least-squares
  line through (block index, width), relative to the mean width (0 on a line — rising, or flat;
  scale-free, so curves of different budgets compare)."""
  y = np.asarray(widths, np.float64)
  x = np.arange(len(y), dtype=np.float64)
  slope, intercept = np.polyfit(x, y, 1)
  return float(np.sqrt(np.mean((y - (slope * x + intercept)) ** 2)) / y.mean())


def solve_rise(model: ChannelModel, positions, b: float, target: int, tolerance: float,
               iterations: int = 24) -> tuple[float, list[int], int]:
  """``(a, widths, macs)`` with ``c_i = round(a·f_i + b)`` at ``target`` MACs within
  ``tolerance`` (relative); :class:`search.Infeasible` if ``a = 0`` is already above it or
  rounding never lands within it."""
  def macs_of(a):
    widths = channel_widths(positions, a, b)
    return widths, model.macs(rexnet.linear_bottleneck_stages(widths, model.layers))

  widths, macs = macs_of(0.0)
  if macs > target * (1 + tolerance):
    raise search.Infeasible(f'first width {b:.1f} is over the budget even with a = 0')
  lo, hi = 0.0, max(8.0, b)
  while macs_of(hi)[1] < target:
    lo, hi = hi, 2 * hi
  for _ in range(iterations):
    a = (lo + hi) / 2
    widths, macs = macs_of(a)
    if abs(macs / target - 1) <= tolerance:
      return a, widths, macs
    lo, hi = (a, hi) if macs < target else (lo, a)
  raise search.Infeasible(f'no a within {tolerance:.1%} of the budget (rounding)')


class ChannelSpace:
  """Proposals of the family at one budget (``propose(trial) -> Candidate``)."""

  def __init__(self, config: ml_collections.ConfigDict, model: ChannelModel, budget: float):
    self.config, self.model, self.budget = config, model, budget
    self.target = int(round(budget * model.macs()))
    self.depth = sum(model.layers)

  def propose(self, trial) -> search.Candidate:
    lo, hi = as_tuple(self.config.first_channels, 'first_channels', float)
    segments = int(self.config.segments)
    b = trial.suggest_float('b', lo, hi)
    knots = [trial.suggest_float(f'knot{j}', 0.0, 1.0) for j in range(segments - 1)]
    slopes = [trial.suggest_float(f'slope{j}', 0.0, 1.0) for j in range(segments)]
    positions = piecewise_positions(self.depth, knots, slopes)
    a, widths, macs = solve_rise(self.model, positions, b, self.target,
                                 float(self.config.macs_tolerance))
    stages = rexnet.linear_bottleneck_stages(widths, self.model.layers)
    return search.Candidate(
        key=' '.join(map(str, widths)),
        overrides={'width_mult': self.model.width_mult, 'depth_mult': self.model.depth_mult,
                   'stages': stages},
        info={'budget': self.budget, 'a': a, 'b': b, 'widths': widths,
              'target_macs': self.target})


def groups(candidates: list[dict], min_for_deciles: int) -> dict[str, list[dict]]:
  """Top, middle and bottom 10 % by accuracy (at least one each), or thirds below
  ``min_for_deciles`` candidates."""
  ranked = sorted(candidates, key=lambda c: -c['accuracy'])
  n = len(ranked)
  if n < 3:
    raise ValueError(f'{n} trained candidates: the percentile analysis needs at least 3')
  k = max(1, round(0.1 * n)) if n >= min_for_deciles else n // 3
  mid = (n - k) // 2
  return {'top': ranked[:k], 'middle': ranked[mid:mid + k], 'bottom': ranked[n - k:]}


def study_name(config: ml_collections.ConfigDict, budget: float) -> str:
  return f'{config.name}-macs{budget:g}'


def search_tests(config: ml_collections.ConfigDict) -> list[str]:
  """ReXNet Sec. 4: at every budget the most accurate channel configurations increase linearly
  (the top group's curves are closer to a line than the bottom group's)."""
  return [f'nonlinearity: top-macs{b:g} < bottom-macs{b:g}'
          for b in as_tuple(config.budgets, 'budgets', float)]


def run_channel_search(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  image_size = config.train.input.image_size
  model = ChannelModel(config.width_mult, config.depth_mult, image_size, num_classes)
  budgets = as_tuple(config.budgets, 'budgets', float)
  per_budget = {}
  for budget in budgets:
    name = study_name(config, budget)
    space = ChannelSpace(config, model, budget)
    study = search.open_study(config, workdir, name, ('maximize',), config.sampler)
    print(f'[search] {name}: {config.candidates} candidates at {space.target / 1e6:.2f} M MACs '
          f'(± {config.macs_tolerance:.0%}); storage {search.storage_url(config, workdir)}',
          flush=True)
    search.run_worker(
        study, space.propose,
        lambda c: search.train_candidate(config, c, name, workdir, num_classes, False),
        int(config.candidates), lambda m: m['accuracy'],
        log=lambda s: print(f'[search] {name}: {s}', flush=True),
        poll_seconds=float(config.heartbeat_seconds))
    per_budget[budget] = search.candidate_rows(study)
  return write_results(config, workdir, per_budget)


def write_results(config, workdir: str, per_budget: dict[float, list[dict]]) -> list[dict]:
  for candidates in per_budget.values():
    for c in candidates:
      c['nonlinearity'] = nonlinearity(c['widths'])
  rows, table = [], []
  found, parts_of = {}, {}
  for budget, candidates in per_budget.items():
    parts = parts_of[budget] = groups(candidates, int(config.min_for_deciles))
    for group, members in parts.items():
      widths = np.mean([m['widths'] for m in members], axis=0)
      rows.append({'name': f'{group}-macs{budget:g}', 'budget': budget, 'group': group,
                   'candidates': len(members),
                   'accuracy': float(np.mean([m['accuracy'] for m in members])),
                   'nonlinearity': float(np.mean([m['nonlinearity'] for m in members])),
                   'mean_widths': [round(float(w), 1) for w in widths],
                   '_samples': {'accuracy': [m['accuracy'] for m in members],
                                'nonlinearity': [m['nonlinearity'] for m in members]}})
    ranked = sorted(candidates, key=lambda c: -c['accuracy'])
    for rank, c in enumerate(ranked):
      table.append({'budget': budget, 'rank': rank + 1,
                    **{k: c[k] for k in ('trial', 'name', 'accuracy', 'nonlinearity', 'a', 'b',
                                         'macs', 'params', 'wall_seconds', 'widths')}})
    best = ranked[0]
    path = os.path.join(workdir, f'best_macs{budget:g}.json')
    write_model_file(path, 'rexnet_100', {
        'width_mult': config.width_mult, 'depth_mult': config.depth_mult,
        'stages': rexnet.linear_bottleneck_stages(best['widths'],
                                                  rexnet.rexnet_layers(config.depth_mult))},
        source=f'{study_name(config, budget)}: the most accurate of {len(candidates)} '
               f'candidates ({100 * best["accuracy"]:.2f} % top-1)')
    found[budget] = path
  write_csv(table, os.path.join(workdir, 'candidates.csv'))
  for budget, path in found.items():
    print(f'[search] best at {budget:g}x MACs: --config.model={path}', flush=True)
  plot_search(per_budget, parts_of, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_search(per_budget: dict[float, list[dict]], parts_of: dict[float, dict[str, list[dict]]],
                path: str) -> str:
  budgets = list(per_budget)
  fig, axes = plots.subplots(len(budgets) + 2, width=3.8)
  colors = {'top': 'tab:green', 'middle': 'tab:blue', 'bottom': 'tab:red'}
  for ax, budget in zip(axes, budgets):
    for group, members in parts_of[budget].items():
      widths = np.asarray([m['widths'] for m in members], np.float64)
      mean, spread = widths.mean(0), widths.std(0)
      x = np.arange(len(mean))
      ax.plot(x, mean, 'o-', ms=3, color=colors[group],
              label=f'{group} ({len(members)}): {100 * np.mean([m["accuracy"] for m in members]):.1f} %')
      ax.fill_between(x, mean - spread, mean + spread, color=colors[group], alpha=0.15)
    ax.set_title(f'{budget:g}x MACs, {len(per_budget[budget])} candidates', fontsize=9)
    ax.set_xlabel('block')
    ax.set_ylabel('output channels (mean ± sd)')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  hist_ax, lin_ax = axes[len(budgets):]
  for budget in budgets:
    acc = [100 * c['accuracy'] for c in per_budget[budget]]
    hist_ax.hist(acc, bins=min(20, max(5, len(acc) // 2)), alpha=0.5, label=f'{budget:g}x')
    lin_ax.scatter([c['nonlinearity'] for c in per_budget[budget]], acc, s=12,
                   label=f'{budget:g}x')
  hist_ax.set_xlabel('top-1 (%)')
  hist_ax.set_ylabel('candidates')
  lin_ax.set_xlabel('nonlinearity (RMS off the fitted line / mean width)')
  lin_ax.set_ylabel('top-1 (%)')
  for ax in (hist_ax, lin_ax):
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  return plots.save(fig, path, 'channel configurations c_i = a f(i) + b sampled at each MACs '
                    'budget, trained once each: mean curves of the top / middle / bottom groups')

