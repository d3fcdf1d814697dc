"""EfficientNetV2's training-aware NAS (Tan & Le, "EfficientNetV2", Sec. 3.3), runnable: a
multi-objective Optuna study over the stages of a base network, each candidate trained briefly
by the real trainer, its train step timed on this machine, its parameters counted.

**The space** (the paper's): per stage of the base network, the block type (MBConv ``ir`` with
SE 0.25, or Fused-MBConv ``fu`` without SE), the kernel (3 or 5), the expansion ratio (1, 4 or
6) and the number of layers (the base's plus ``layer_deltas``); strides and channel widths are
the base's ("reused from the backbone" — the paper searches no channels). ``channel_mults``
other than ``(1.0,)`` also searches each stage's width (rounded to 8), which the paper does not.
The base is the registered ``base`` model compound-scaled by ``phi`` and then resolved to final
repeats and widths, so a candidate is a list of block strings that build exactly at
``width_mult = depth_mult = 1``.

**The objectives**: top-1 (maximized), train step seconds and parameters (minimized); the study
keeps their Pareto front. The paper's single reward ``A · S^w · P^v`` (w = -0.07, v = -0.05,
``analysis/table.nas_reward``) ranks the candidates, with S and P relative to the base
network's, which is always the study's first candidate. Samplers: ``random``, ``tpe``
(multi-objective TPE after ``startup`` random proposals) or ``nsga2``.

**The claim** the searched V2 networks show: Fused-MBConv in the early stages, MBConv in the
later ones. Per candidate ``fused_early`` is the fraction of fused blocks in the first half of
the stages minus that in the second half; the test: the top third by reward has a larger
``fused_early`` than the bottom third. The best candidate is written as a model file
(``best.json``, ``--config.model=PATH``).
"""
from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np

from effnet_jax.analysis import plots, search, trainer
from effnet_jax.analysis.table import as_tuple, nas_reward, write_csv
from effnet_jax.models import ModelConfig, arch, get_model_config
from effnet_jax.models.registry import write_model_file

OPS = ('fu', 'ir')


def base_stages(config: ml_collections.ConfigDict) -> tuple[ModelConfig, list[arch.BlockArgs]]:
  """``(model_config, [BlockArgs per stage])`` of the base at ``phi``: final repeats and widths
  (the family's rounding)."""
  mcfg = get_model_config(config.base, **({'phi': config.phi} if config.phi else {}))
  out = []
  for stage in mcfg.block_strings():
    if len(stage) != 1:
      raise ValueError(f'{config.base}: a stage of {len(stage)} block strings; the search '
                       'space needs one per stage')
    b = arch.decode_block_string(stage[0])
    out.append(dataclasses.replace(
        b, repeats=arch.round_repeats(b.repeats, mcfg.depth_mult),
        out_channels=arch.round_filters(b.out_channels, mcfg.width_mult,
                                        round_limit=mcfg.round_limit)))
  return mcfg, out


def block_string(op: str, repeats: int, kernel: int, stride: int, expansion: int,
                 channels: int) -> str:
  s = f'{op}_r{repeats}_k{kernel}_s{stride}_e{expansion}_c{channels}'
  return s + '_se0.25' if op == 'ir' else s


class NasSpace:
  """Proposals over the base's stages (``propose(trial) -> Candidate``)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.mcfg, self.stages = base_stages(config)
    self.fixed = {'width_mult': 1.0, 'depth_mult': 1.0,
                  'stem_channels': self.mcfg.resolved_stem_channels(),
                  'head_channels': self.mcfg.resolved_head_channels()}

  def base_params(self) -> dict:
    """The base network as a point of the space."""
    params = {}
    for j, b in enumerate(self.stages):
      params.update({f's{j}_op': b.block_type, f's{j}_kernel': b.kernel_size,
                     f's{j}_expansion': b.expand_ratio, f's{j}_layers': 0,
                     f's{j}_width': 1.0})
    return params

  def propose(self, trial) -> search.Candidate:
    c = self.config
    strings = []
    for j, b in enumerate(self.stages):
      op = trial.suggest_categorical(f's{j}_op', as_tuple(c.ops, 'ops', str))
      kernel = trial.suggest_categorical(f's{j}_kernel', as_tuple(c.kernels, 'kernels', int))
      expansion = trial.suggest_categorical(f's{j}_expansion',
                                            as_tuple(c.expansions, 'expansions', int))
      delta = trial.suggest_categorical(f's{j}_layers',
                                        as_tuple(c.layer_deltas, 'layer_deltas', int))
      width = trial.suggest_categorical(f's{j}_width',
                                        as_tuple(c.channel_mults, 'channel_mults', float))
      strings.append(block_string(op, max(1, b.repeats + delta), kernel, b.stride, expansion,
                                  arch.round_filters(b.out_channels, width, round_limit=0.0)))
    stages = tuple((s,) for s in strings)
    half = len(strings) // 2
    fused = [s.startswith('fu_') for s in strings]
    return search.Candidate(
        key=' '.join(strings), overrides={**self.fixed, 'stages': stages},
        info={'blocks': ' '.join(strings),
              'fused_early': float(np.mean(fused[:half]) - np.mean(fused[half:])),
              'base': trial.user_attrs.get('base', False) or
                      trial.params == self.base_params()})


def study_name(config) -> str:
  return f'{config.name}-{config.sampler}'


def nas_tests(config: ml_collections.ConfigDict) -> list[str]:
  """EfficientNetV2 Sec. 3.3/Table 4: the searched networks put Fused-MBConv in the early
  stages and MBConv in the later ones."""
  del config
  return ['fused_early: top > bottom']


def run_nas(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  if config.train.model != config.base:
    raise ValueError(f'base={config.base!r} but train.model={config.train.model!r}: candidates '
                     'train as train.model with the searched stages; give both the same model')
  num_classes = trainer.num_classes_of(config.train)
  space = NasSpace(config)
  name = study_name(config)
  study = search.open_study(config, workdir, name, ('maximize', 'minimize', 'minimize'),
                            config.sampler)
  if not study.get_trials(deepcopy=False):
    study.enqueue_trial(space.base_params(), user_attrs={'base': True}, skip_if_exists=True)
  print(f'[search] {name}: {config.candidates} candidates over {len(space.stages)} stages of '
        f'{config.base} (phi {config.phi:g}); storage {search.storage_url(config, workdir)}',
        flush=True)
  search.run_worker(
      study, space.propose,
      lambda c: search.train_candidate(config, c, name, workdir, num_classes, True),
      int(config.candidates), lambda m: (m['accuracy'], m['step_time'], float(m['params'])),
      log=lambda s: print(f'[search] {name}: {s}', flush=True),
      poll_seconds=float(config.heartbeat_seconds))
  pareto = {t.user_attrs.get('candidate') for t in study.best_trials}
  return write_results(config, workdir, search.candidate_rows(study), pareto, space)


def add_reward(candidates: list[dict], w: float, v: float) -> list[dict]:
  """``step_time_norm``, ``params_norm`` (relative to the base candidate) and the reward."""
  bases = [c for c in candidates if c.get('base')]
  if not bases:
    raise ValueError('the study has no trained base candidate to normalize S and P by')
  base = bases[0]
  for c in candidates:
    c['step_time_norm'] = c['step_time'] / base['step_time']
    c['params_norm'] = c['params'] / base['params']
    c['reward'] = nas_reward(c['accuracy'], c['step_time_norm'], c['params_norm'], w, v)
  return candidates


def write_results(config, workdir: str, candidates: list[dict], pareto: set[str],
                  space: NasSpace) -> list[dict]:
  if len(candidates) < 2:
    raise ValueError(f'{len(candidates)} trained candidate(s): the analysis needs at least 2')
  add_reward(candidates, float(config.reward_w), float(config.reward_v))
  ranked = sorted(candidates, key=lambda c: -c['reward'])
  table = []
  for rank, c in enumerate(ranked):
    table.append({'rank': rank + 1, 'trial': c['trial'], 'name': c['name'],
                  'pareto': c['candidate'] in pareto, 'base': bool(c.get('base')),
                  'proposed_by': c.get('proposed_by', ''),
                  **{k: c[k] for k in ('accuracy', 'step_time', 'params', 'macs',
                                       'step_time_norm', 'params_norm', 'reward',
                                       'fused_early', 'wall_seconds', 'blocks')}})
  write_csv(table, os.path.join(workdir, 'reward_table.csv'))
  best = ranked[0]
  path = write_model_file(
      os.path.join(workdir, 'best.json'), config.base,
      {**space.fixed, 'stages': tuple((s,) for s in best['blocks'].split())},
      source=f'{study_name(config)}: the best reward of {len(candidates)} candidates '
             f'({100 * best["accuracy"]:.2f} % top-1, S {best["step_time_norm"]:.3f}, '
             f'P {best["params_norm"]:.3f} of the base)')
  print(f'[search] best reward: {best["blocks"]}\n[search] train it: '
        f'--config.model={path}', flush=True)
  k = max(1, len(ranked) // 3)
  rows = []
  for group, members in (('top', ranked[:k]), ('bottom', ranked[-k:])):
    rows.append({'name': group, 'candidates': len(members),
                 'accuracy': float(np.mean([m['accuracy'] for m in members])),
                 'reward': float(np.mean([m['reward'] for m in members])),
                 'fused_early': float(np.mean([m['fused_early'] for m in members])),
                 '_samples': {key: [m[key] for m in members]
                              for key in ('accuracy', 'reward', 'fused_early')}})
  rows += [{'name': f'#{r["rank"]}', **{k: v for k, v in r.items() if k != 'name'},
            'row': r['name']} for r in table]
  plot_nas(ranked, pareto, os.path.join(workdir, f'{config.name}.png'))
  return rows


def plot_nas(ranked: list[dict], pareto: set[str], path: str) -> str:
  fig, (front_ax, params_ax, reward_ax) = plots.subplots(3, width=4.2)
  for ax, key, label in ((front_ax, 'step_time', 'train step (ms, this machine)'),
                         (params_ax, 'params', 'parameters (M)')):
    scale = 1e3 if key == 'step_time' else 1e-6
    on = [c for c in ranked if c['candidate'] in pareto]
    off = [c for c in ranked if c['candidate'] not in pareto]
    ax.scatter([scale * c[key] for c in off], [100 * c['accuracy'] for c in off], s=14,
               color='tab:gray', label='dominated')
    ax.scatter([scale * c[key] for c in on], [100 * c['accuracy'] for c in on], s=22,
               color='tab:orange', label='Pareto front (acc, step, params)')
    base = [c for c in ranked if c.get('base')]
    ax.scatter([scale * c[key] for c in base], [100 * c['accuracy'] for c in base], s=60,
               facecolors='none', edgecolors='k', label='base network')
    ax.set_xlabel(label)
    ax.set_ylabel('top-1 (%)')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  order = sorted(ranked, key=lambda c: c['trial'])
  best, running = [], -np.inf
  for c in order:
    running = max(running, c['reward'])
    best.append(100 * running)
  reward_ax.plot([c['trial'] for c in order], [100 * c['reward'] for c in order], 'o', ms=3,
                 color='tab:gray', label='candidate')
  reward_ax.plot([c['trial'] for c in order], best, '-', color='tab:orange', label='best so far')
  reward_ax.set_xlabel('trial')
  reward_ax.set_ylabel('reward A·S^w·P^v (%)')
  reward_ax.legend(fontsize=7)
  reward_ax.grid(alpha=0.3)
  return plots.save(fig, path, 'training-aware NAS: accuracy against measured step time and '
                    'parameters; the reward over the trials')
