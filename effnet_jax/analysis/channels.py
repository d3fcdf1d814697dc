"""ReXNet's channel study (Han et al., "Rethinking Channel Dimensions for Efficient Model Design").

* ``rexnet_rank``: random single layers ``f(W X)``, ``W`` of ``d_out x d_in``: the rank ratio
  ``rank(f(W X)) / d_out`` against the expansion ratio ``d_out / d_in`` per nonlinearity — the
  paper's rank analysis (an expanding layer cannot create rank it does not get; which
  nonlinearity recovers how much).
* ``rexnet_channels``: channel configurations ``c_i = a·f(i) + b`` over ReXNet's blocks — linear
  (ReXNet's own), piecewise-linear, stage-wise (MobileNetV2-style: constant within a stage) —
  at the linear model's MACs, each trained; then the singular values and normalized nuclear
  norm of every block's output of the trained models.

Rank: singular values above ``rtol`` times the largest. An elementwise non-polynomial ``f``
makes ``f(W X)`` full-rank with probability 1, so the exact rank says nothing; what the paper's
curves (and these) measure is the numerical rank at a relative tolerance.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax.analysis import plots, stats, trainer
from effnet_jax.analysis.scaling import match_flops
from effnet_jax.analysis.table import add_rewards, as_tuple, write_csv
from effnet_jax.models import arch, build_model, get_model_config, rexnet
from effnet_jax.models.utils import profile

NONLINEARITIES = {
    'linear': lambda x: x, 'relu': jax.nn.relu, 'relu6': jax.nn.relu6,
    'leaky_relu': jax.nn.leaky_relu, 'elu': jax.nn.elu, 'softplus': jax.nn.softplus,
    'silu': jax.nn.silu, 'sigmoid': jax.nn.sigmoid,
}
SCHEDULES = ('linear', 'piecewise', 'stagewise')


def singular_values(matrix: np.ndarray) -> np.ndarray:
  """Singular values of a 2-D matrix, largest first (float64)."""
  return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)


def numerical_rank(matrix: np.ndarray, rtol: float) -> int:
  """Number of singular values above ``rtol`` times the largest (0 for a zero matrix)."""
  s = singular_values(matrix)
  return int(np.sum(s > rtol * s[0])) if s.size and s[0] > 0 else 0


def effective_rank(matrix: np.ndarray) -> float:
  """Roy & Vetterli's effective rank ``exp(entropy of σ / Σσ)``: tolerance-free, equal to the
  rank for equal singular values, lower the more they decay."""
  s = singular_values(matrix)
  p = s[s > 0] / s.sum()
  return float(np.exp(-np.sum(p * np.log(p))))


def random_layer(nonlinearity: str, d_in: int, d_out: int, num_samples: int,
                 rng: np.random.Generator) -> np.ndarray:
  """``f(W X)`` of one random layer: ``W`` normal / sqrt(d_in) (unit-variance
  pre-activations), ``X`` of ``num_samples`` standard-normal columns."""
  if nonlinearity not in NONLINEARITIES:
    raise ValueError(f'unknown nonlinearity {nonlinearity!r}; expected one of '
                     f'{sorted(NONLINEARITIES)}')
  w = rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)
  x = rng.normal(size=(d_in, num_samples))
  return np.asarray(NONLINEARITIES[nonlinearity](jnp.asarray(w @ x, jnp.float32)))


def rank_study(nonlinearities, expansions, d_in: int, samples_per_output: int, trials: int,
               rtol: float, seed: int = 0) -> list[dict]:
  """Per (f, expansion), over ``trials`` random layers: the mean and spread of the rank ratio
  ``rank(f(W X)) / d_out`` at ``rtol``, and the mean effective-rank ratio."""
  rng = np.random.default_rng(seed)
  rows = []
  for name in nonlinearities:
    for expansion in expansions:
      d_out = max(1, int(round(d_in * expansion)))
      outputs = [random_layer(name, d_in, d_out, samples_per_output * d_out, rng)
                 for _ in range(trials)]
      ratios = [numerical_rank(y, rtol) / d_out for y in outputs]
      effective = [effective_rank(y) / d_out for y in outputs]
      rows.append({'name': f'{name}_x{expansion:g}', 'nonlinearity': name,
                   'expansion': expansion, 'd_in': d_in, 'd_out': d_out,
                   'rank_ratio': float(np.mean(ratios)), 'rank_ratio_std': float(np.std(ratios)),
                   'effective_rank_ratio': float(np.mean(effective)),
                   '_samples': {'rank_ratio': ratios, 'effective_rank_ratio': effective}})
  return rows


def rank_tests(config: ml_collections.ConfigDict) -> list[str]:
  """ReXNet Sec. 3: an expanding layer with a nonlinearity keeps more rank than a linear one
  (SiLU and ReLU6 above linear at expansion 6, the inverted bottleneck's), and the more it
  expands the less of the rank it keeps (SiLU at 2 above SiLU at 12) — over the trials."""
  names = as_tuple(config.nonlinearities, 'nonlinearities', str)
  expansions = as_tuple(config.expansions, 'expansions', float)
  tests = [f'rank_ratio: {f}_x6 > linear_x6' for f in ('silu', 'relu6')
           if f in names and 'linear' in names and 6.0 in expansions]
  if 'silu' in names and {2.0, 12.0} <= set(expansions):
    tests.append('rank_ratio: silu_x2 > silu_x12')
  return tests


def run_rank_study(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  names = as_tuple(config.nonlinearities, 'nonlinearities', str)
  rows = rank_study(names, as_tuple(config.expansions, 'expansions', float), config.d_in,
                    config.samples_per_output, config.trials, config.rtol, config.seed)
  fig, (rank_ax, effective_ax) = plots.subplots(2, width=5, height=3.8)
  for name in names:
    line = [r for r in rows if r['nonlinearity'] == name]
    style = dict(marker='o', ms=3, label=name, lw=2.5 if name in ('silu', 'relu6') else 1.2,
                 capsize=2)
    x = [r['expansion'] for r in line]
    for ax, key in ((rank_ax, 'rank_ratio'), (effective_ax, 'effective_rank_ratio')):
      spans = [stats.interval(r['_samples'][key], config.level) for r in line]
      ax.errorbar(x, [i.mean for i in spans],
                  yerr=[0.0 if not i.known else i.half for i in spans], **style)
  rank_ax.set_ylabel(f'rank(f(WX)) / d_out  (rtol {config.rtol:g})')
  effective_ax.set_ylabel('effective rank / d_out')
  for ax in (rank_ax, effective_ax):
    ax.set_xscale('log', base=2)
    ax.set_xlabel('expansion ratio d_out / d_in')
    ax.grid(alpha=0.3)
  rank_ax.legend(fontsize=7, ncol=2)
  plots.save(fig, os.path.join(workdir, f'{config.name}.png'),
             f'random layers f(WX), d_in = {config.d_in}, {config.trials} trials each '
             '(± 95 % interval)')
  return rows


def schedule_positions(kind: str, layers, knot: float = 0.5,
                       slopes: tuple[float, float] = (0.5, 1.5)) -> list[float]:
  """``f(i)`` for every block ``i``: ``linear`` i; ``piecewise`` slope ``slopes[0]`` up to the
  block at fraction ``knot`` of the depth, ``slopes[1]`` after; ``stagewise`` the index of the
  last block of i's stage (a constant width per stage, stepping up at stage ends)."""
  depth = sum(layers)
  if kind == 'linear':
    return [float(i) for i in range(depth)]
  if kind == 'piecewise':
    k = knot * (depth - 1)
    return [slopes[0] * min(i, k) + slopes[1] * max(0.0, i - k) for i in range(depth)]
  if kind == 'stagewise':
    ends = np.cumsum(layers) - 1
    return [float(ends[np.searchsorted(ends, i)]) for i in range(depth)]
  raise ValueError(f'unknown channel schedule {kind!r}; expected one of {SCHEDULES}')


def channel_widths(positions, a: float, b: float) -> list[int]:
  """``c_i = round(a·f(i) + b)`` (Python's rounding, as ReXNet's own schedule), at least 1."""
  return [max(1, int(round(a * f + b))) for f in positions]


def rexnet_linear(width_mult: float, depth: int) -> tuple[float, float]:
  """(a, b) of ReXNet's own linear schedule at ``width_mult`` (rexnet.rexnet_stages)."""
  return 180 * width_mult / depth, 16 * max(width_mult, 1.0)


@dataclasses.dataclass(frozen=True)
class ChannelModel:
  """The ReXNet variant whose block widths an experiment sets."""
  width_mult: float
  depth_mult: float
  image_size: int
  num_classes: int

  @property
  def layers(self) -> list[int]:
    return rexnet.rexnet_layers(self.depth_mult)

  def config(self, stages=()):
    return get_model_config('rexnet_100', width_mult=self.width_mult, depth_mult=self.depth_mult,
                            num_classes=self.num_classes, stages=stages)

  def macs(self, stages=()) -> int:
    return profile(build_model(self.config(stages)), self.image_size)[1]


def schedule_stages(model: ChannelModel, kind: str, b: float, target: int, knot: float,
                    slopes, iterations: int = 10) -> tuple[tuple[str, ...], ...]:
  """Block strings of schedule ``kind`` with slope ``a`` matched to ``target`` MACs
  (``iterations`` bisection steps, one abstract trace each)."""
  positions = schedule_positions(kind, model.layers, knot, slopes)
  stages_of = lambda a: rexnet.linear_bottleneck_stages(channel_widths(positions, a, b),
                                                      model.layers)
  a = match_flops(lambda a: model.macs(stages_of(a)), target, 0.0, 400.0 / max(positions),
                  iterations=iterations)
  return stages_of(a)


def block_widths(stages) -> list[int]:
  """Every block's output width, in network order, from block strings of final widths."""
  return [arch.decode_block_string(s).out_channels for stage in stages for s in stage]


def channel_rows(config: ml_collections.ConfigDict, num_classes: int) -> list[trainer.Row]:
  image_size = config.train.input.image_size or get_model_config(config.train.model).image_size
  model = ChannelModel(config.width_mult, config.depth_mult, image_size, num_classes)
  target = model.macs()
  _, b = rexnet_linear(model.width_mult, sum(model.layers))
  rows = []
  for kind in as_tuple(config.schedules, 'schedules', str):
    stages = (model.config().block_strings() if kind == 'linear' else
              schedule_stages(model, kind, b, target, config.knot, tuple(config.slopes),
                              config.match_iterations))
    rows.append(trainer.Row(kind, overrides={'width_mult': model.width_mult,
                                             'depth_mult': model.depth_mult,
                                             'stages': tuple(stages)},
                            info={'schedule': kind, 'widths': block_widths(stages)}))
  return rows


def block_outputs(model, variables, images) -> list[jax.Array]:
  """Every block's output (eval mode), in network order."""
  import flax.linen as nn

  from effnet_jax.models.blocks import BLOCKS
  outputs = []

  def capture(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and isinstance(context.module, tuple(BLOCKS.values())):
      outputs.append(out)
    return out

  with nn.intercept_methods(capture):
    model.apply(variables, images, train=False)
  return outputs


def spectrum_rows(name: str, features: list[jax.Array], rtol: float) -> list[dict]:
  """Per block: channels, normalized nuclear norm ``Σσ / (σ_max·C)`` and rank ratio of the
  ``[N·H·W, C]`` output matrix, and its normalized singular values."""
  rows = []
  for index, f in enumerate(features):
    s = singular_values(np.asarray(f).reshape(-1, f.shape[-1]))
    s = s / s[0]
    rows.append({'schedule': name, 'block': index, 'channels': f.shape[-1],
                 'nuclear_norm': float(s.sum() / f.shape[-1]),
                 'rank_ratio': float(np.sum(s > rtol) / f.shape[-1]), 'singular_values': s})
  return rows


def channel_tests(config: ml_collections.ConfigDict) -> list[str]:
  """ReXNet Sec. 4: the linear channel configuration is the most accurate at equal MACs."""
  kinds = as_tuple(config.schedules, 'schedules', str)
  return [f'accuracy: linear > {k}' for k in kinds if k != 'linear'] if 'linear' in kinds else []


def run_channel_search(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  from effnet_jax.pretrained import load_pretrained
  num_classes = trainer.num_classes_of(config.train)
  rows = trainer.train_rows(config, channel_rows(config, num_classes), workdir, num_classes)
  add_rewards(rows)
  images = trainer.eval_images(config.train, config.spectrum_images)
  spectra = []
  for row in rows:
    model, variables = load_pretrained(row['run_dir'])
    outputs = jax.jit(lambda v, x: block_outputs(model, v, x))(variables, images)
    spectra += spectrum_rows(row['name'], outputs, config.rtol)
  write_csv([{k: v for k, v in r.items() if k != 'singular_values'} for r in spectra],
            os.path.join(workdir, 'spectra.csv'))
  plot_channels(rows, spectra, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_channels(rows: list[dict], spectra: list[dict], path: str) -> str:
  fig, (width_ax, acc_ax, norm_ax, sv_ax) = plots.subplots(4, width=3.6)
  for r in rows:
    width_ax.plot(r['widths'], 'o-', ms=3, label=r['name'])
  width_ax.set_xlabel('block')
  width_ax.set_ylabel('output channels')
  width_ax.legend(fontsize=8)
  plots.bar(acc_ax, [r['name'] for r in rows], [100 * r['accuracy'] for r in rows],
            'top-1 (%) at equal MACs', fmt='{:.1f}', errors=plots.errors(rows, 100))
  acc_ax.set_ylim(*plots.limits(rows, 'accuracy', 100))
  for r in rows:
    mine = [s for s in spectra if s['schedule'] == r['name']]
    norm_ax.plot([s['block'] for s in mine], [s['nuclear_norm'] for s in mine], 'o-', ms=3,
                 label=r['name'])
    last = mine[-1]['singular_values']
    sv_ax.plot(np.arange(1, len(last) + 1) / len(last), last, label=r['name'])
  norm_ax.set_xlabel('block')
  norm_ax.set_ylabel('nuclear norm / (σ_max · C)')
  sv_ax.set_xlabel('index / C (last block)')
  sv_ax.set_ylabel('σ / σ_max')
  sv_ax.set_yscale('log')
  for ax in (width_ax, norm_ax, sv_ax):
    ax.grid(alpha=0.3)
  return plots.save(fig, path, 'channel configurations at equal MACs (trained on the embedded '
                    f'set; ± 95 % intervals over {rows[0]["seeds"]} seeds; spectra: seed 0)')
