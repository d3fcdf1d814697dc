"""Reading other zoos' weight files into ``{name: numpy array}`` in the source's own naming.

timm / lukemelas: ``.safetensors`` (no torch needed) or torch ``.pth``/``.pt``/``.bin`` state dicts.
Keras: Keras 3 ``.weights.h5`` and ``.keras`` files and legacy ``.h5`` files, read with h5py (no
Keras model is built). TF: name-based checkpoints through ``tf.train.load_checkpoint``. The same
normalisation (``module.`` prefixes, Keras 2 variable names, TF model scope, EMA shadows, a
1001-class head) applies to in-memory state dicts. :mod:`effnet_jax.tools.convert` maps the result
onto a model.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from typing import Any, Mapping

import numpy as np

SOURCES = ('timm', 'keras', 'tf', 'lukemelas')
TF_BN_VARIABLES = ('gamma', 'beta', 'moving_mean', 'moving_variance')


class ConversionError(ValueError):
  """Weights that cannot be converted: not in the source's format, or not fitting the model
  their architecture name selects."""


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, 'detach'):  # torch tensor
    value = value.detach().cpu()
    if value.dtype.is_floating_point:
      value = value.float()
    return value.numpy()
  return np.asarray(value)


def _read_torch(path: str) -> dict[str, Any]:
  """A state dict from ``.safetensors`` (no torch needed) or a torch pickle (``.pth``, ...)."""
  if path.endswith('.safetensors'):
    from safetensors.numpy import load_file
    return load_file(path)
  try:
    import torch
  except ImportError as e:
    raise ImportError(f'reading {path} needs torch: pip install -r requirements-interop.txt '
                      '(or convert the file to .safetensors)') from e
  obj = torch.load(path, map_location='cpu', weights_only=True)
  for key in ('state_dict', 'model'):  # training checkpoints wrap the state dict
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
  return dict(obj)


def _normalize_torch(state_dict: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
  out = {k[len('module.'):] if k.startswith('module.') else k: _to_numpy(v)
         for k, v in state_dict.items()}
  return out, {}


def _h5_open(path: str):
  import h5py
  if path.endswith('.keras'):  # a zip holding model.weights.h5
    with zipfile.ZipFile(path) as z:
      return h5py.File(io.BytesIO(z.read('model.weights.h5')), 'r')
  return h5py.File(path, 'r')


# Keras 3 .weights.h5 stores a layer's variables by index; their order per layer class.
_KERAS3_VARS = {'batch_normalization': TF_BN_VARIABLES, 'conv2d': ('kernel', 'bias'),
                'depthwise_conv2d': ('kernel', 'bias'), 'dense': ('kernel', 'bias'),
                'normalization': ('mean', 'variance', 'count')}


def _read_keras(path: str) -> dict[str, np.ndarray]:
  """``layer/variable`` -> array from a Keras 3 ``.weights.h5``/``.keras`` or a legacy ``.h5``."""
  import h5py
  out: dict[str, np.ndarray] = {}

  def visit(name, group):
    if not isinstance(group, h5py.Group):
      return
    if 'weight_names' in group.attrs:  # legacy h5: <layer>/<layer>/<variable>:0
      for weight in group.attrs['weight_names']:
        weight = weight.decode() if isinstance(weight, bytes) else str(weight)
        out[f'{name.split("/")[-1]}/{weight.split("/")[-1]}'] = group[weight][()]
    elif name.endswith('/vars') and len(group):  # Keras 3: layers/<class>[_n]/vars/<index>
      owner = name.split('/')[-2]
      layer = group.attrs.get('name', owner)
      layer = layer.decode() if isinstance(layer, bytes) else str(layer)
      names = _KERAS3_VARS.get(re.sub(r'_\d+$', '', owner), ())
      for i in sorted(group, key=int):
        out[f'{layer}/{names[int(i)] if int(i) < len(names) else i}'] = group[i][()]

  with _h5_open(path) as f:
    f.visititems(visit)
  if not out:
    raise ConversionError(f'{path}: no Keras layer weights found')
  return out


def _normalize_keras(state_dict: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
  """Keras 2 variable names ('block1a_dwconv/depthwise_kernel:0') -> Keras 3 ones."""
  out = {}
  for key, value in state_dict.items():
    key = re.sub(r':\d+$', '', key)
    layer, _, var = key.rpartition('/')
    out[f'{layer.split("/")[-1]}/{"kernel" if var == "depthwise_kernel" else var}'] = _to_numpy(
        value)
  return out, {}


_TF_VARIABLES = ('kernel', 'depthwise_kernel', 'bias', *TF_BN_VARIABLES)
_EMA = '/ExponentialMovingAverage'


def _is_tf_model_variable(name: str) -> bool:
  """Model weights and their EMA shadows; not optimizer slots, step counters, ..."""
  return name.removesuffix(_EMA).rsplit('/', 1)[-1] in _TF_VARIABLES


def _read_tf(path: str) -> dict[str, np.ndarray]:
  import tensorflow as tf
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if _is_tf_model_variable(name)}


def _normalize_tf(state_dict: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
  """Strips the model scope ('efficientnet-b0/'), takes EMA shadows where present and cuts a
  1001-class head (index 0 = background) to 1000 classes."""
  names = [k for k in state_dict if _is_tf_model_variable(k)]
  stems = [k for k in names if k.removesuffix(_EMA).endswith('stem/conv2d/kernel')]
  if not stems:
    raise ConversionError('no stem/conv2d/kernel variable: not an EfficientNet TF checkpoint')
  scope = stems[0].removesuffix(_EMA)[:-len('stem/conv2d/kernel')]
  out, ema = {}, 0
  for name in names:
    if not name.startswith(scope) or name.endswith(_EMA):
      continue
    shadow = name + _EMA
    ema += shadow in state_dict
    out[name[len(scope):]] = _to_numpy(state_dict[shadow if shadow in state_dict else name])
  notes = {'scope': scope.rstrip('/'), 'weights': 'ema' if ema else 'raw'}
  if ema and ema < len(out):
    notes['weights'] = f'ema ({ema} of {len(out)} variables; the rest raw)'
  if out.get('head/dense/bias', np.zeros(0)).shape == (1001,):
    out['head/dense/kernel'] = out['head/dense/kernel'][:, 1:]
    out['head/dense/bias'] = out['head/dense/bias'][1:]
    notes['background_class_dropped'] = True
  return out, notes


_READERS = {'timm': _read_torch, 'lukemelas': _read_torch, 'keras': _read_keras, 'tf': _read_tf}
_NORMALIZERS = {'timm': _normalize_torch, 'lukemelas': _normalize_torch,
                'keras': _normalize_keras, 'tf': _normalize_tf}


def read_source(source: str, state_dict_or_path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """The source's tensors as {name: numpy array} in its own naming, plus notes (TF: scope,
  EMA or raw weights, background class dropped)."""
  if source not in SOURCES:
    raise ValueError(f'unknown source {source!r}; expected one of {SOURCES}')
  if isinstance(state_dict_or_path, (str, os.PathLike)):
    path = os.fspath(state_dict_or_path)
    if not os.path.exists(path) and not (source == 'tf' and os.path.exists(path + '.index')):
      raise FileNotFoundError(path)
    state_dict_or_path = _READERS[source](path)
  return _NORMALIZERS[source](state_dict_or_path)
