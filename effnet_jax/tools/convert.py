"""Converts other zoos' weights (timm, Keras, TF checkpoints, lukemelas) to a pretrained directory.

  python -m effnet_jax.tools.convert --source timm --arch tf_efficientnet_b0 \\
      --input tf_efficientnet_b0.safetensors --output weights/tf_efficientnet_b0
  python -m effnet_jax.tools.convert --source keras --arch EfficientNetV2S \\
      --input v2s.weights.h5 --output DIR
  python -m effnet_jax.tools.convert --source tf --arch efficientnet-b0 \\
      --input efficientnet-b0/model.ckpt --output DIR
  python -m effnet_jax.tools.convert --source lukemelas --arch efficientnet-lite0 \\
      --input efficientnet-lite0.pth --output DIR

``--arch`` is the architecture's name in the source zoo; it selects the registered effnet_jax model
and the overrides that reproduce the source exactly (TF SAME vs symmetric padding, BatchNorm
epsilon, number of classes read from the weights). Every tensor of the model is looked up under
the source's own name and brought into Flax layout; a missing, unexpected or differently shaped
tensor is an error that lists them all. The result loads with
``effnet_jax.pretrained.load_pretrained(DIR)``. File formats: :mod:`effnet_jax.tools.weight_files`;
the tables and the measured parity: docs/weights.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from effnet_jax import cli, hub
from effnet_jax.models.arch import BlockSpec
from effnet_jax.models.registry import ModelConfig, build_model, get_family, get_model_config
from effnet_jax.tools.weight_files import (SOURCES, TF_BN_VARIABLES, ConversionError,
                                           read_source)

__all__ = ['SOURCES', 'ConversionError', 'convert', 'convert_state_dict', 'read_source',
           'resolve_arch']

PROGRAM = 'effnet_jax.tools.convert'
# PyTorch-trained weights (timm's non-``tf_`` models, ReXNet, ResNet): static symmetric padding and
# PyTorch's BatchNorm epsilon. TF-origin weights use the registered defaults (SAME, 1e-3).
_TORCH_TRAINED = {'padding': 'symmetric', 'bn_eps': 1e-5}


# ---------------------------------------------------------------------------------------------
# Source architecture -> registered model + overrides.

_V1 = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'l2']
_LITE = ['lite0', 'lite1', 'lite2', 'lite3', 'lite4']
_V2 = ['s', 'm', 'l', 'xl', 'b0', 'b1', 'b2', 'b3']


def _arch_table(source: str) -> dict[str, tuple[str, dict[str, Any]]]:
  """{source arch name: (registered model, overrides)} of one source zoo."""
  table: dict[str, tuple[str, dict[str, Any]]] = {}
  if source == 'timm':
    for v in _V1 + _LITE:
      table[f'tf_efficientnet_{v}'] = (f'efficientnet_{v}', {})
      table[f'efficientnet_{v}'] = (f'efficientnet_{v}', _TORCH_TRAINED)
    for v in _V2:
      table[f'tf_efficientnetv2_{v}'] = (f'efficientnetv2_{v}', {})
    for v in ('s', 'm', 'l', 'xl'):
      table[f'efficientnetv2_{v}'] = (f'efficientnetv2_{v}', _TORCH_TRAINED)
    for w in (100, 130, 150, 200, 300):
      table[f'rexnet_{w}'] = (f'rexnet_{w}', {})  # registered with PyTorch padding and epsilon
    for v in ('050', '075', '100', '140', '110d', '120d'):
      table[f'mobilenetv2_{v}'] = (f'mobilenetv2_{v}', {})  # as rexnet
    for name in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnet50d'):
      table[name] = (name, {})  # timm-trained / torchvision: registered with PyTorch constants
    for size in ('tiny', 'small', 'base'):
      name = f'swin_{size}_patch4_window7_224'
      table[name] = (name, {})  # registered as timm builds it (LayerNorm epsilon 1e-5)
  elif source == 'keras':
    for i in range(8):
      table[f'EfficientNetB{i}'] = (f'efficientnet_b{i}', {})
    for v in _V2:
      if v != 'xl':  # keras.applications has no V2-XL
        table[f'EfficientNetV2{v.upper()}'] = (f'efficientnetv2_{v}', {})
  elif source in ('tf', 'lukemelas'):
    for v in _V1 + _LITE:
      table[f'efficientnet-{v}'] = (f'efficientnet_{v}', {})
    if source == 'tf':
      for v in _V2:
        table[f'efficientnetv2-{v}'] = (f'efficientnetv2_{v}', {})
  else:
    raise ValueError(f'unknown source {source!r}; expected one of {SOURCES}')
  return table


def resolve_arch(source: str, arch: str) -> tuple[str, dict[str, Any]]:
  """(registered model name, overrides) reproducing ``arch`` of ``source``.

  timm names may carry a pretrained tag (``tf_efficientnet_b0.ns_jft_in1k``); Keras names match
  case-insensitively and without ``-``/``_`` (``EfficientNetV2B0`` = Keras' ``efficientnetv2-b0``).
  """
  table = _arch_table(source)
  key = arch.split('.')[0] if source == 'timm' else arch
  if source == 'keras':
    canonical = {re.sub('[-_]', '', k.lower()): k for k in table}
    key = canonical.get(re.sub('[-_]', '', arch.lower()), arch)
  if key not in table:
    close = difflib.get_close_matches(arch, list(table), n=3, cutoff=0.5)
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    raise ConversionError(f'{source} architecture {arch!r} is not supported{hint} '
                          f'(supported: {", ".join(table)})')
  name, overrides = table[key]
  return name, dict(overrides)


# ---------------------------------------------------------------------------------------------
# Tensor layouts of the three frameworks.

def _identity(w: np.ndarray) -> np.ndarray:
  return w


def _oihw_to_hwio(w: np.ndarray) -> np.ndarray:  # torch conv (also depthwise [C,1,k,k])
  return w.transpose(2, 3, 1, 0)


def _conv1x1_to_dense_torch(w: np.ndarray) -> np.ndarray:  # [out, in, 1, 1] -> [in, out]
  return w[:, :, 0, 0].T


def _transpose(w: np.ndarray) -> np.ndarray:  # torch Linear [out, in] -> [in, out]
  return w.T


def _depthwise_tf(w: np.ndarray) -> np.ndarray:  # [k, k, C, 1] -> [k, k, 1, C]
  return w.transpose(0, 1, 3, 2)


def _conv1x1_to_dense_tf(w: np.ndarray) -> np.ndarray:  # [1, 1, in, out] -> [in, out]
  return w[0, 0]


@dataclasses.dataclass(frozen=True)
class _Layout:
  """How one framework names and lays out the variables of a conv, BN, SE or dense layer."""
  sep: str
  conv: str  # kernel variable of a conv
  depthwise: str  # kernel variable of a depthwise conv
  bn: tuple[str, str, str, str]  # scale, bias, mean, variance
  conv_transform: Callable[[np.ndarray], np.ndarray]
  depthwise_transform: Callable[[np.ndarray], np.ndarray]
  se_transform: Callable[[np.ndarray], np.ndarray]  # 1x1 conv with bias -> Dense kernel
  dense_transform: Callable[[np.ndarray], np.ndarray]
  dense: tuple[str, str] = ('kernel', 'bias')


_TORCH = _Layout('.', 'weight', 'weight', ('weight', 'bias', 'running_mean', 'running_var'),
                 _oihw_to_hwio, _oihw_to_hwio, _conv1x1_to_dense_torch, _transpose,
                 dense=('weight', 'bias'))
# Keras 3 calls every conv kernel ``kernel``; Keras 2 names ('depthwise_kernel', ':0') are
# normalised to that on reading.
_KERAS = _Layout('/', 'kernel', 'kernel', TF_BN_VARIABLES, _identity, _depthwise_tf,
                 _conv1x1_to_dense_tf, _identity)
_TF = _Layout('/', 'kernel', 'depthwise_kernel', TF_BN_VARIABLES, _identity, _depthwise_tf,
              _conv1x1_to_dense_tf, _identity)


# ---------------------------------------------------------------------------------------------
# Source names of every layer of a model.

@dataclasses.dataclass(frozen=True)
class _Block:
  stage: int  # stage index
  index: int  # index in the stage
  flat: int  # index over all blocks
  spec: BlockSpec


def _roles(spec: BlockSpec) -> list[str]:
  """The conv/BN units (and 'se') of one block, in the order the block runs them."""
  if spec.block_type == 'fu':
    return ['fused'] + (['se'] if spec.se_channels else []) + (
        ['project'] if spec.expand_ratio != 1 else [])
  return (['expand'] if spec.expand_ratio != 1 else []) + ['dw'] + (
      ['se'] if spec.se_channels else []) + ['project']


class _Naming:
  """A source's layer names: ``stem``/``head`` (conv, bn), ``classifier``, and per block a dict
  role -> (conv, bn) or, for 'se', (reduce, expand[, bn]).

  :meth:`mapping` lists every tensor of a model; its default walks the stem/stages/head
  skeleton of ``effnet_jax.models.network`` with the names above. A family with another
  structure (a transformer, a ResNet) overrides :meth:`mapping` with its own walk.
  """
  layout: _Layout
  stem: tuple[str, str]
  classifier: str

  def mapping(self, config: ModelConfig) -> list['_Tensor']:
    """Every tensor of ``config``'s model with its source name and layout transform."""
    return _skeleton_mapping(self, config)

  def head(self, num_blocks: int) -> tuple[str, str]:
    raise NotImplementedError

  def block(self, b: _Block) -> dict[str, tuple[str, ...]]:
    raise NotImplementedError


class _TimmEfficientNet(_Naming):
  """timm efficientnet.py: ``blocks.{stage}.{index}``; block classes DepthwiseSeparableConv
  (MBConv e1), InvertedResidual, ConvBnAct (Fused e1), EdgeResidual (Fused)."""
  layout = _TORCH
  stem = ('conv_stem', 'bn1')
  classifier = 'classifier'

  def head(self, num_blocks):
    return ('conv_head', 'bn2')

  def block(self, b):
    p = f'blocks.{b.stage}.{b.index}.'
    e1 = b.spec.expand_ratio == 1
    if b.spec.block_type == 'fu':
      names = {'fused': ('conv', 'bn1') if e1 else ('conv_exp', 'bn1'),
               'project': ('conv_pwl', 'bn2')}
    elif e1:
      names = {'dw': ('conv_dw', 'bn1'), 'project': ('conv_pw', 'bn2')}
    else:
      names = {'expand': ('conv_pw', 'bn1'), 'dw': ('conv_dw', 'bn2'),
               'project': ('conv_pwl', 'bn3')}
    names['se'] = ('se.conv_reduce', 'se.conv_expand')
    return {role: tuple(p + n for n in pair) for role, pair in names.items()}


class _TimmReXNet(_Naming):
  """timm rexnet.py: ``features.{flat index}`` LinearBottleneck blocks, head conv after them."""
  layout = _TORCH
  stem = ('stem.conv', 'stem.bn')
  classifier = 'head.fc'

  def head(self, num_blocks):
    return (f'features.{num_blocks}.conv', f'features.{num_blocks}.bn')

  def block(self, b):
    p = f'features.{b.flat}.'
    names = {role: (f'{p}{unit}.conv', f'{p}{unit}.bn')
             for role, unit in (('expand', 'conv_exp'), ('dw', 'conv_dw'), ('project', 'conv_pwl'))}
    names['se'] = (f'{p}se.fc1', f'{p}se.fc2', f'{p}se.bn')
    return names


class _TimmResNet(_Naming):
  """timm resnet.py (torchvision's names): stem ``conv1``/``bn1`` (ResNet-D: ``conv1.{0,1,3,4,6}``
  a Sequential of conv, BN, act, conv, BN, act, conv, then ``bn1``), blocks
  ``layer{stage + 1}.{index}`` with ``conv{k}``/``bn{k}`` and the projection shortcut
  ``downsample.{0,1}`` (ResNet-D: ``downsample.{1,2}`` after the average pool), classifier ``fc``.
  Its own walk: no head conv, and the network is effnet_jax.models.resnet.ResNet."""
  layout = _TORCH
  stem = ('conv1', 'bn1')
  classifier = 'fc'

  def mapping(self, config):
    layout = self.layout
    if config.resnet_d:
      units = [('conv1.0', 'conv1.1'), ('conv1.3', 'conv1.4'), ('conv1.6', 'bn1')]
    else:
      units = [self.stem]
    out = []
    for i, (conv, bn) in enumerate(units):
      out += _conv_bn(('stem', f'conv{i + 1}'), conv, bn, layout)
    for b in _blocks(config):
      p = f'layer{b.stage + 1}.{b.index}.'
      prefix = (f'stages_{b.stage}', f'blocks_{b.index}')
      for k in range(1, 4 if b.spec.block_type == 'bottleneck' else 3):
        out += _conv_bn(prefix + (f'conv{k}',), f'{p}conv{k}', f'{p}bn{k}', layout)
      if not b.spec.skip:  # the projection shortcut
        first = 1 if config.resnet_d else 0
        out += _conv_bn(prefix + ('downsample',), f'{p}downsample.{first}',
                        f'{p}downsample.{first + 1}', layout)
    if config.num_classes:
      out += _dense(('classifier',), self.classifier, layout, layout.dense_transform)
    return out


class _Keras(_Naming):
  """keras.applications efficientnet.py / efficientnet_v2.py: ``block{stage + 1}{letter}_``."""
  layout = _KERAS
  stem = ('stem_conv', 'stem_bn')
  classifier = 'predictions'

  def __init__(self, v2: bool):
    self.dwconv = 'dwconv2' if v2 else 'dwconv'

  def head(self, num_blocks):
    return ('top_conv', 'top_bn')

  def block(self, b):
    p = f'block{b.stage + 1}{chr(97 + b.index)}_'
    names = {'expand': (p + 'expand_conv', p + 'expand_bn'), 'dw': (p + self.dwconv, p + 'bn'),
             'se': (p + 'se_reduce', p + 'se_expand'),
             'project': (p + 'project_conv', p + 'project_bn')}
    if b.spec.block_type == 'fu':
      # Fused: the kxk conv is 'expand_conv' (e > 1) or, without expansion, 'project_conv'.
      names['fused'] = names['project'] if b.spec.expand_ratio == 1 else names['expand']
    return names


def _numbered(base: str, i: int) -> str:
  return base if i == 0 else f'{base}_{i}'


class _TensorFlow(_Naming):
  """tensorflow/tpu efficientnet_model.py and google/automl effnetv2_model.py: ``blocks_{flat}``
  scopes whose convs and BNs are numbered in creation order (conv2d, conv2d_1; bn, bn_1, bn_2)."""
  layout = _TF

  def __init__(self, bn: str):
    self.bn = bn  # 'tpu_batch_normalization' (TPU-trained releases) or 'batch_normalization'
    self.stem = ('stem/conv2d', f'stem/{bn}')
    self.classifier = 'head/dense'

  def head(self, num_blocks):
    return ('head/conv2d', f'head/{self.bn}')

  def block(self, b):
    p = f'blocks_{b.flat}/'
    names: dict[str, tuple[str, ...]] = {}
    convs = bns = 0
    for role in _roles(b.spec):
      if role == 'se':
        names['se'] = (p + 'se/conv2d', p + 'se/conv2d_1')
        continue
      if role == 'dw':
        conv = 'depthwise_conv2d'
      else:
        conv, convs = _numbered('conv2d', convs), convs + 1
      names[role] = (p + conv, p + _numbered(self.bn, bns))
      bns += 1
    return names


class _Lukemelas(_Naming):
  """lukemelas EfficientNet-PyTorch (and the EfficientNet-Lite port): ``_blocks.{flat}``."""
  layout = _TORCH
  stem = ('_conv_stem', '_bn0')
  classifier = '_fc'

  def head(self, num_blocks):
    return ('_conv_head', '_bn1')

  def block(self, b):
    if b.spec.block_type != 'ir':
      raise ConversionError('lukemelas models have MBConv blocks only')
    p = f'_blocks.{b.flat}.'
    return {'expand': (p + '_expand_conv', p + '_bn0'), 'dw': (p + '_depthwise_conv', p + '_bn1'),
            'se': (p + '_se_reduce', p + '_se_expand'),
            'project': (p + '_project_conv', p + '_bn2')}


class _TimmSwin(_Naming):
  """timm swin_transformer.py (1.0): ``patch_embed.proj``/``norm``, ``layers.{i}`` stages with
  ``downsample`` (patch merging, stages 2-4) and ``blocks.{j}``, final ``norm``, ``head.fc``.
  The ``relative_position_index`` and ``attn_mask`` buffers are not weights (recomputed here)."""
  layout = _TORCH
  classifier = 'head.fc'

  def mapping(self, config):
    def norm(target, name):
      yield _Tensor(('params',) + target + ('scale',), f'{name}.weight', _identity)
      yield _Tensor(('params',) + target + ('bias',), f'{name}.bias', _identity)

    def linear(target, name, bias=True):
      yield _Tensor(('params',) + target + ('kernel',), f'{name}.weight', _transpose)
      if bias:
        yield _Tensor(('params',) + target + ('bias',), f'{name}.bias', _identity)

    out = [_Tensor(('params', 'patch_embed', 'proj', 'kernel'), 'patch_embed.proj.weight',
                   _oihw_to_hwio),
           _Tensor(('params', 'patch_embed', 'proj', 'bias'), 'patch_embed.proj.bias', _identity)]
    out += norm(('patch_embed', 'norm'), 'patch_embed.norm')
    for i, depth in enumerate(config.depths):
      stage, p = (f'stages_{i}',), f'layers.{i}.'
      if i:
        out += norm(stage + ('downsample', 'norm'), p + 'downsample.norm')
        out += linear(stage + ('downsample', 'reduction'), p + 'downsample.reduction', bias=False)
      for j in range(depth):
        block, q = stage + (f'blocks_{j}',), f'{p}blocks.{j}.'
        out += norm(block + ('norm1',), q + 'norm1')
        out += linear(block + ('attn', 'qkv'), q + 'attn.qkv')
        out.append(_Tensor(('params',) + block + ('attn', 'relative_position_bias_table'),
                           q + 'attn.relative_position_bias_table', _identity))
        out += linear(block + ('attn', 'proj'), q + 'attn.proj')
        out += norm(block + ('norm2',), q + 'norm2')
        out += linear(block + ('fc1',), q + 'mlp.fc1')
        out += linear(block + ('fc2',), q + 'mlp.fc2')
    out += norm(('norm',), 'norm')
    if config.num_classes:
      out += linear(('classifier',), 'head.fc')
    return out


def _tensorflow(state_dict: Mapping[str, Any]) -> _TensorFlow:
  tpu = any('tpu_batch_normalization' in k for k in state_dict)
  return _TensorFlow('tpu_batch_normalization' if tpu else 'batch_normalization')


# The layer-naming schemes, by the key a family names in Family.weight_layouts per source zoo
# (a family owns which scheme its weights follow; this module owns the schemes).
NAMINGS: dict[str, Callable[[Mapping[str, Any]], _Naming]] = {
    'timm_efficientnet': lambda state_dict: _TimmEfficientNet(),
    'timm_rexnet': lambda state_dict: _TimmReXNet(),
    'timm_resnet': lambda state_dict: _TimmResNet(),
    'timm_swin': lambda state_dict: _TimmSwin(),
    'keras_efficientnet': lambda state_dict: _Keras(v2=False),
    'keras_efficientnetv2': lambda state_dict: _Keras(v2=True),
    'tensorflow': _tensorflow,
    'lukemelas': lambda state_dict: _Lukemelas(),
}


def _naming(source: str, config: ModelConfig, state_dict: Mapping[str, Any]) -> _Naming:
  layouts = get_family(config.family).weight_layouts
  if source not in layouts:
    raise ConversionError(f'no {source} weight layout for the {config.family} family '
                          f'(it has: {", ".join(layouts) or "none"})')
  return NAMINGS[layouts[source]](state_dict)


# ---------------------------------------------------------------------------------------------
# The mapping: one (target path, source key, transform) per tensor of the model.

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Tensor:
  target: Path  # e.g. ('params', 'stem', 'conv', 'kernel')
  key: str  # source name
  transform: Callable[[np.ndarray], np.ndarray]


def _blocks(config: ModelConfig) -> Iterator[_Block]:
  flat = 0
  for s, stage in enumerate(config.resolved_arch()):
    for j, spec in enumerate(stage):
      yield _Block(s, j, flat, spec)
      flat += 1


def _conv_bn(target: Path, conv: str, bn: str, layout: _Layout, depthwise: bool = False):
  j = layout.sep.join
  kernel = (layout.depthwise, layout.depthwise_transform) if depthwise else (
      layout.conv, layout.conv_transform)
  yield _Tensor(('params',) + target + ('conv', 'kernel'), j([conv, kernel[0]]), kernel[1])
  yield from _bn(target + ('bn',), bn, layout)


def _bn(target: Path, bn: str, layout: _Layout):
  scale, bias, mean, var = (layout.sep.join([bn, n]) for n in layout.bn)
  yield _Tensor(('params',) + target + ('scale',), scale, _identity)
  yield _Tensor(('params',) + target + ('bias',), bias, _identity)
  yield _Tensor(('batch_stats',) + target + ('mean',), mean, _identity)
  yield _Tensor(('batch_stats',) + target + ('var',), var, _identity)


def _dense(target: Path, name: str, layout: _Layout, transform):
  kernel, bias = layout.dense
  yield _Tensor(('params',) + target + ('kernel',), layout.sep.join([name, kernel]), transform)
  yield _Tensor(('params',) + target + ('bias',), layout.sep.join([name, bias]), _identity)


def _skeleton_mapping(naming: _Naming, config: ModelConfig) -> list[_Tensor]:
  """The tensors of a stem/stages/head network (``_Naming.mapping``'s default)."""
  layout = naming.layout
  out = list(_conv_bn(('stem',), *naming.stem, layout))
  blocks = list(_blocks(config))
  for b in blocks:
    names = naming.block(b)
    prefix = (f'stages_{b.stage}', f'blocks_{b.index}')
    for role in _roles(b.spec):
      if role == 'se':
        reduce, expand, *bn = names['se']
        out += _dense(prefix + ('se', 'reduce'), reduce, layout, layout.se_transform)
        if bn:
          out += _bn(prefix + ('se', 'bn'), bn[0], layout)
        out += _dense(prefix + ('se', 'expand'), expand, layout, layout.se_transform)
      else:
        out += _conv_bn(prefix + (role,), *names[role], layout, depthwise=role == 'dw')
  out += _conv_bn(('head_conv',), *naming.head(len(blocks)), layout)
  if config.num_classes:
    out += _dense(('classifier',), naming.classifier, layout, layout.dense_transform)
  return out


# ---------------------------------------------------------------------------------------------
# Conversion.

def _ignored(source: str, key: str) -> bool:
  """Source tensors with no counterpart that are not an error."""
  if source == 'timm':  # BN step counters; Swin's index and mask buffers (computed, not learned)
    return key.endswith(('num_batches_tracked', 'relative_position_index', 'attn_mask'))
  if source == 'lukemelas':
    return key.endswith('num_batches_tracked')
  if source == 'keras':  # in-model input preprocessing; ours is in the data pipeline
    return re.match(r'normalization(_\d+)?/', key) is not None
  return False


def _num_classes(naming: _Naming, state_dict: Mapping[str, np.ndarray]) -> int:
  bias = state_dict.get(naming.layout.sep.join([naming.classifier, naming.layout.dense[1]]))
  return 0 if bias is None else int(bias.shape[0])


def _expected_shapes(config: ModelConfig) -> dict[Path, tuple[int, ...]]:
  abstract = jax.eval_shape(lambda: build_model(config).init(
      jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32), train=False))
  return {tuple(k.key for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(dict(abstract))[0]}


def _listing(label: str, items: list[str], limit: int = 20) -> str:
  shown = items[:limit] + ([f'... and {len(items) - limit} more'] if len(items) > limit else [])
  return f'  {label} ({len(items)}):\n' + ''.join(f'    {s}\n' for s in shown)


def convert_state_dict(source: str, arch: str, state_dict: Mapping[str, np.ndarray]):
  """``(model_name, overrides, variables)`` from a source state dict already in numpy (see
  :func:`read_source`). Raises :class:`ConversionError` listing every missing, unexpected and
  differently shaped tensor."""
  model_name, overrides = resolve_arch(source, arch)
  naming = _naming(source, get_model_config(model_name, **overrides), state_dict)
  overrides['num_classes'] = _num_classes(naming, state_dict)
  config = get_model_config(model_name, **overrides)
  mapping = naming.mapping(config)
  expected = _expected_shapes(config)
  targets = {t.target for t in mapping}
  if targets != set(expected):  # a naming bug, not bad weights
    raise AssertionError(f'mapping for {model_name} does not cover the model: '
                         f'{sorted(set(expected) ^ targets)[:10]}')
  missing, reshaped, variables = [], [], {}
  for t in mapping:
    if t.key not in state_dict:
      missing.append(t.key)
      continue
    value = np.asarray(state_dict[t.key])
    try:
      converted = t.transform(value)
    except (IndexError, ValueError):
      converted = None
    if converted is None or converted.shape != expected[t.target]:
      reshaped.append(f'{t.key}: {value.shape} in the weights, {"/".join(t.target)} needs '
                      f'{expected[t.target]}' + (' after the layout transform'
                                                 if t.transform is not _identity else ''))
      continue
    node = variables
    for part in t.target[:-1]:
      node = node.setdefault(part, {})
    node[t.target[-1]] = np.ascontiguousarray(converted, dtype=np.float32)
  used = {t.key for t in mapping}
  unexpected = sorted(k for k in state_dict if k not in used and not _ignored(source, k))
  if missing or unexpected or reshaped:
    raise ConversionError(
        f'{source} weights do not match {arch} (effnet_jax {model_name} with '
        f'{overrides}):\n' + (_listing('missing from the weights', missing) if missing else '')
        + (_listing('unexpected in the weights', unexpected) if unexpected else '')
        + (_listing('shape mismatches', reshaped) if reshaped else ''))
  return model_name, overrides, variables


def convert(source: str, arch: str, state_dict_or_path) -> tuple[str, dict[str, Any], dict]:
  """``(model_name, overrides, {'params', 'batch_stats'})`` from a source zoo's weights.

  ``state_dict_or_path``: a file/checkpoint path, or the weights as a mapping — a timm or
  lukemelas ``state_dict()`` (torch tensors or arrays), Keras ``{w.path: w.numpy()}`` or TF
  ``{variable name: array}``. ``create_model(model_name, **overrides)`` (or
  ``save_pretrained``) gives the matching model.
  """
  state_dict, _ = read_source(source, state_dict_or_path)
  return convert_state_dict(source, arch, state_dict)


def main(argv=None) -> int:
  parser = cli.ArgumentParser(PROGRAM, description=__doc__.split('\n\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--source', required=True, choices=SOURCES)
  parser.add_argument('--arch', required=True, help="the architecture's name in the source zoo")
  parser.add_argument('--input', required=True, help='weights file or TF checkpoint')
  parser.add_argument('--output', required=True, help='pretrained directory to write')
  parser.add_argument('--class_names', help='optional text file, one class name per line')
  args = parser.parse_args(argv)
  class_names = None
  if args.class_names:
    try:
      with open(args.class_names) as f:
        class_names = [line.strip() for line in f if line.strip()]
    except OSError as e:
      parser.error(f'--class_names {args.class_names}: {e.strerror or e}')

  from effnet_jax.pretrained import save_pretrained

  try:
    state_dict, notes = read_source(args.source, args.input)
    model_name, overrides, variables = convert_state_dict(args.source, args.arch, state_dict)
  except FileNotFoundError:
    parser.error(f'--input {args.input}: no such file or TF checkpoint')
  except OSError as e:  # a directory, no permission
    parser.error(f'--input {args.input}: {e.strerror or e}')
  except ConversionError as e:
    print(f'{PROGRAM}: error: {e}', file=sys.stderr)
    return 1
  source = {'framework': args.source, 'arch': args.arch, 'file': os.path.abspath(args.input),
            **notes}
  tag = hub.TAGS.get(args.arch) if args.source == 'timm' else None
  if tag is not None:  # a released timm tag: the preprocessing it is evaluated with
    overrides = hub.with_preprocessing(model_name, overrides, tag.preprocessing)
    source.update(hub.tag_record(tag))
  save_pretrained(args.output, model_name, variables, overrides, source=source,
                  class_names=class_names)
  count = len(jax.tree_util.tree_leaves(variables))
  print(f'{args.source} {args.arch} -> {model_name} {overrides}: {count} tensors'
        + (f' ({notes["weights"]} weights)' if 'weights' in notes else '') + f' in {args.output}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
