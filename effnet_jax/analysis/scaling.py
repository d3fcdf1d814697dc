"""EfficientNet's scaling studies on the trainer.

* ``scaling``: width, depth and resolution scaled one at a time against compound scaling, each
  single-dimension model matched to the compound model's MACs (the paper's Figures 3 and 8).
* ``compound_search``: the grid search for α, β, γ ≥ 1 with α·β²·γ² ≈ 2 at φ = 1, the best triple
  by accuracy, then models scaled by φ with it (Sec. 3.3).

Every multiplier, rounding and resolution comes from the model code: ``registry.compound_scale``
(``arch.compound_coefficients``, ``arch.scaled_resolution``) for compound scaling and the
registered model's rounding rules (``round_filters``, ``round_repeats``) for every variant.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from typing import Callable

import ml_collections

from effnet_jax.analysis import plots, trainer
from effnet_jax.analysis.table import add_rewards, as_tuple
from effnet_jax.models import build_model, compound_scale, get_model_config
from effnet_jax.models.utils import profile

DIMENSIONS = ('width', 'depth', 'resolution')
PAPER_TRIPLE = (1.2, 1.1, 1.15)  # EfficientNet Sec. 3.3: alpha, beta, gamma
_SEARCH_RANGE = {'width': 8.0, 'depth': 16.0, 'resolution': 8}  # upper bound, x base


@dataclasses.dataclass(frozen=True)
class Scale:
  """A model variant: absolute width and depth multipliers and its image size."""
  width_mult: float
  depth_mult: float
  image_size: int

  def row(self, name: str, **info) -> trainer.Row:
    return trainer.Row(
        name, overrides={'phi': None, 'width_mult': self.width_mult,
                         'depth_mult': self.depth_mult},
        changes={'input.image_size': self.image_size, 'input.eval_image_size': self.image_size},
        info=dict(info, width_mult=self.width_mult, depth_mult=self.depth_mult,
                  image_size=self.image_size))


def base_scale(model: str, phi: float, image_size: int) -> Scale:
  """The registered ``model`` compound-scaled by ``phi`` (0: as registered), at ``image_size``
  (0: the scaled train size)."""
  config = get_model_config(model, phi=phi) if phi else get_model_config(model)
  return Scale(config.width_mult, config.depth_mult, image_size or config.image_size)


def compound(model: str, base: Scale, phi: float, alpha: float, beta: float,
             gamma: float) -> Scale:
  """``base`` scaled by φ with (α, β, γ) through ``registry.compound_scale``."""
  config = dataclasses.replace(get_model_config(model), width_mult=base.width_mult,
                               depth_mult=base.depth_mult, image_size=base.image_size,
                               eval_image_size=base.image_size)
  scaled = compound_scale(config, phi, alpha, beta, gamma)
  return Scale(scaled.width_mult, scaled.depth_mult, scaled.image_size)


@functools.lru_cache(maxsize=None)
def macs(model: str, scale: Scale, num_classes: int) -> int:
  """MACs of one image of ``model`` at ``scale`` (an abstract trace; memoized)."""
  config = get_model_config(model, width_mult=scale.width_mult, depth_mult=scale.depth_mult,
                            num_classes=num_classes)
  return profile(build_model(config), scale.image_size)[1]


def match_flops(cost: Callable[[float], float], target: float, lo: float, hi: float,
                integer: bool = False, iterations: int = 12) -> float:
  """The ``x`` in ``[lo, hi]`` whose ``cost(x)`` is nearest ``target``, by bisection on a
  non-decreasing ``cost`` (rounded channel and repeat counts make it a step function)."""
  if cost(hi) < target:
    raise ValueError(f'cost {cost(hi):,.0f} at the upper bound {hi} is below the target '
                     f'{target:,.0f}: widen the search range')
  best = min((lo, hi), key=lambda x: abs(cost(x) - target))
  for _ in range(iterations):
    if integer and hi - lo <= 1:
      break
    mid = (lo + hi) // 2 if integer else (lo + hi) / 2
    value = cost(mid)
    if abs(value - target) < abs(cost(best) - target):
      best = mid
    lo, hi = (mid, hi) if value < target else (lo, mid)
  return best


def single_dimension(model: str, base: Scale, dimension: str, target: float,
                     num_classes: int) -> Scale:
  """``base`` scaled along ``dimension`` only, to the MACs nearest ``target``."""
  if dimension not in DIMENSIONS:
    raise ValueError(f'unknown dimension {dimension!r}; expected one of {DIMENSIONS}')
  top = _SEARCH_RANGE[dimension]
  if dimension == 'resolution':
    size = match_flops(lambda r: macs(model, dataclasses.replace(base, image_size=int(r)),
                                      num_classes),
                       target, base.image_size, base.image_size * top, integer=True)
    return dataclasses.replace(base, image_size=int(size))
  field = f'{dimension}_mult'
  start = getattr(base, field)
  mult = match_flops(lambda m: macs(model, dataclasses.replace(base, **{field: m}), num_classes),
                     target, start, start * top)
  return dataclasses.replace(base, **{field: mult})


def scaling_rows(config: ml_collections.ConfigDict, num_classes: int) -> list[trainer.Row]:
  """The base model, then per φ: the compound model and each dimension at its MACs."""
  base = base_scale(config.model, config.base_phi, config.base_image_size)
  dimensions = as_tuple(config.dimensions, 'dimensions', str)
  rows = [base.row('base', dimension='base', phi=0.0, macs_target=0)]
  for phi in as_tuple(config.phis, 'phis', float):
    target = compound(config.model, base, phi, config.alpha, config.beta, config.gamma)
    goal = macs(config.model, target, num_classes)
    rows.append(target.row(f'compound_phi{phi:g}', dimension='compound', phi=phi,
                           macs_target=goal))
    for dimension in dimensions:
      scale = single_dimension(config.model, base, dimension, goal, num_classes)
      rows.append(scale.row(f'{dimension}_phi{phi:g}', dimension=dimension, phi=phi,
                            macs_target=goal))
  return rows


def scaling_tests(config: ml_collections.ConfigDict) -> list[str]:
  """The claim "compound scaling beats every single dimension at equal MACs": per φ, the
  compound row's accuracy above each single-dimension row's."""
  return [f'accuracy: compound_phi{phi:g} > {dimension}_phi{phi:g}'
          for phi in as_tuple(config.phis, 'phis', float)
          for dimension in as_tuple(config.dimensions, 'dimensions', str)]


def run_scaling(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  rows = trainer.train_rows(config, scaling_rows(config, num_classes), workdir, num_classes)
  add_rewards(rows)
  plot_scaling(rows, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_scaling(rows: list[dict], path: str) -> str:
  fig, (acc_ax, reward_ax) = plots.subplots(2)
  base = rows[0]
  for dimension in ['compound'] + [d for d in DIMENSIONS if any(r['dimension'] == d for r in rows)]:
    line = [base] + sorted((r for r in rows if r['dimension'] == dimension), key=lambda r: r['phi'])
    style = dict(marker='o', lw=2.5 if dimension == 'compound' else 1.2, label=dimension,
                 capsize=3)
    x = [r['macs'] / 1e6 for r in line]
    acc_ax.errorbar(x, [100 * r['accuracy'] for r in line], yerr=plots.errors(line, 100),
                    **style)
    reward_ax.plot(x, [r['reward'] for r in line], marker='o', label=dimension,
                   lw=style['lw'])
  for ax, label in ((acc_ax, 'top-1 (%)'), (reward_ax, 'reward A·S^-0.07·P^-0.05')):
    ax.set_xlabel('MMACs per image')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  acc_ax.legend(fontsize=8)
  return plots.save(fig, path, 'one dimension vs compound scaling at matched MACs '
                    f'(mean ± 95 % interval over {base["seeds"]} seeds)')


def constrained_grid(alphas, betas, gammas, target: float = 2.0,
                     tolerance: float = 0.1) -> list[tuple[float, float, float]]:
  """Every (α, β, γ) of the grid with ``|α·β²·γ² − target| ≤ tolerance``."""
  values = list(alphas) + list(betas) + list(gammas)
  if not values or min(values) < 1:
    raise ValueError(f'alpha, beta and gamma must be >= 1 (the grid has {min(values, default=None)})')
  triples = [(a, b, g) for a, b, g in itertools.product(alphas, betas, gammas)
             if abs(a * b * b * g * g - target) <= tolerance]
  if not triples:
    raise ValueError(f'no (alpha, beta, gamma) of the grid has alpha*beta^2*gamma^2 within '
                     f'{tolerance} of {target}')
  return triples


def search_rows(config: ml_collections.ConfigDict) -> tuple[Scale, list[trainer.Row]]:
  base = base_scale(config.model, config.base_phi, config.base_image_size)
  triples = constrained_grid(as_tuple(config.alphas, 'alphas', float),
                             as_tuple(config.betas, 'betas', float),
                             as_tuple(config.gammas, 'gammas', float), config.target,
                             config.tolerance)
  rows = [base.row('base', alpha=1.0, beta=1.0, gamma=1.0, phi=0.0, stage='base')]
  for a, b, g in triples:
    scale = compound(config.model, base, 1.0, a, b, g)
    rows.append(scale.row(triple_name(a, b, g), alpha=a, beta=b, gamma=g, phi=1.0,
                          constraint=a * b * b * g * g, stage='search'))
  return base, rows


def search_tests(config: ml_collections.ConfigDict) -> list[str]:
  """The claim "the paper's (α, β, γ) is the best triple of the grid": its accuracy at φ = 1
  above every other triple's (none when the paper's triple is not in the grid)."""
  _, rows = search_rows(config)
  names = [r.name for r in rows if r.info['stage'] == 'search']
  paper = triple_name(*PAPER_TRIPLE)
  if paper not in names:
    return []
  return [f'accuracy: {paper} > {name}' for name in names if name != paper]


def triple_name(a: float, b: float, g: float) -> str:
  return f'a{a:g}_b{b:g}_g{g:g}'


def run_compound_search(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  num_classes = trainer.num_classes_of(config.train)
  base, rows = search_rows(config)
  results = trainer.train_rows(config, rows, workdir, num_classes)
  best = max(results[1:], key=lambda r: r['accuracy'])
  print(f'[ablate] best (alpha, beta, gamma) = ({best["alpha"]:g}, {best["beta"]:g}, '
        f'{best["gamma"]:g}): mean top-1 {best["accuracy"]:.4f}', flush=True)
  scaled = [compound(config.model, base, phi, best['alpha'], best['beta'], best['gamma']).row(
      f'best_phi{phi:g}', alpha=best['alpha'], beta=best['beta'], gamma=best['gamma'], phi=phi,
      stage='scaled') for phi in as_tuple(config.scale_phis, 'scale_phis', float)]
  results += trainer.train_rows(config, scaled, workdir, num_classes) if scaled else []
  add_rewards(results)
  for r in results:
    r['best'] = r['name'] == best['name']
    r['macs_ratio'] = r['macs'] / results[0]['macs']
  plot_search(results, os.path.join(workdir, f'{config.name}.png'))
  return results


def plot_search(rows: list[dict], path: str) -> str:
  fig, (grid_ax, curve_ax) = plots.subplots(2)
  search = [r for r in rows if r['stage'] == 'search']
  best = next(i for i, r in enumerate(search) if r['best'])
  plots.bar(grid_ax, [f'{r["alpha"]:g}/{r["beta"]:g}/{r["gamma"]:g}' for r in search],
            [100 * r['accuracy'] for r in search], 'top-1 (%) at φ = 1', highlight=best,
            fmt='{:.1f}', errors=plots.errors(search, 100))
  grid_ax.set_ylim(*plots.limits(search, 'accuracy', 100))
  grid_ax.set_xlabel('α / β / γ')
  line = [rows[0], search[best]] + [r for r in rows if r['stage'] == 'scaled']
  curve_ax.errorbar([r['macs'] / 1e6 for r in line], [100 * r['accuracy'] for r in line],
                    yerr=plots.errors(line, 100), fmt='o-', color='tab:orange', capsize=3)
  for r in line:
    curve_ax.annotate(f'φ={r["phi"]:g}', (r['macs'] / 1e6, 100 * r['accuracy']), fontsize=8)
  curve_ax.set_xlabel('MMACs per image')
  curve_ax.set_ylabel('top-1 (%)')
  curve_ax.grid(alpha=0.3)
  return plots.save(fig, path, 'compound coefficients: grid at φ = 1, best triple scaled '
                    f'(mean ± 95 % interval, {rows[0]["seeds"]} seeds)')
