"""Export weights to a TensorFlow SavedModel (jax2tf), TensorFlow Lite (float32, int8) and ONNX.

  python -m effnet_jax.tools.export --weights DIR --output OUT [--image_size N] [--tflite]
      [--tflite_int8 --representative_folder IMAGES [--representative_count 200]] [--onnx]
      [--check_folder IMAGES] [--platforms cpu,cuda,tpu]

``DIR`` is a pretrained directory or a training workdir. The model runs in inference mode:
BatchNorm uses its running statistics, dropout and stochastic depth are off, float32 throughout.
Two signatures take the evaluation view of an image (centre crop, resized to N x N: see
``effnet_jax.predict.load_pixels``) and return ``logits``, ``probabilities`` float32
[batch, classes]:

  serving_default   ``images`` float32 [batch, N, N, 3], already normalised
                    ``(x / 255 - mean) / std`` (``effnet_jax.predict.load_image``)
  serving_uint8     ``pixels`` uint8 [batch, N, N, 3], RGB 0..255; the model's own
                    normalisation runs inside the graph

``OUT`` gets

  saved_model.pb, variables/  both signatures; the batch size is free, N is fixed (default the
                              model's eval size)
  effnet_jax.json             the signatures and files, the preprocessing the deployment does
                              (crop, interpolation) and the one inside (mean/std), the labels
  model.tflite                with --tflite: both signatures, TFLite built-in ops only, any batch
                              size
  model_int8.tflite           with --tflite_int8: serving_uint8 fully quantised (post-training,
                              calibrated on --representative_folder): uint8 pixels in, int8
                              logits and probabilities out, int8 built-in ops; batch 1
  model.onnx                  with --onnx (jax2onnx): serving_uint8's input and outputs, any
                              batch size

``--check_folder`` runs every file written and the JAX model on the images of a folder and prints
their top-1 agreement and largest logit error (:func:`agreement`). The weights are SavedModel
variables (no 2 GB graph limit); the computation is serialised as StableHLO (jax2tf native
serialisation: jax 0.10 has no other) for the ``--platforms`` listed, and the TFLite converter
turns that same StableHLO into TFLite built-in ops, float32 and int8 alike.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
from typing import Any, Callable

import numpy as np

from effnet_jax import cli

PROGRAM = 'effnet_jax.tools.export'
SIGNATURE = 'serving_default'
UINT8_SIGNATURE = 'serving_uint8'
INPUTS = {SIGNATURE: 'images', UINT8_SIGNATURE: 'pixels'}  # each signature's input
OUTPUTS = ('logits', 'probabilities')
METADATA = 'effnet_jax.json'
SAVED_MODEL = 'saved_model.pb'
TFLITE = 'model.tflite'
TFLITE_INT8 = 'model_int8.tflite'
ONNX = 'model.onnx'
DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')
REPRESENTATIVE_COUNT = 200
# Settings the exported computation is built with, whatever the weights were trained with.
INFERENCE_OVERRIDES = dict(dtype='float32', depthwise_impl='xla', conv_impl='xla',
                           bn_axis_name=None)


def inference_function(model):
  """``(variables, images) -> {'logits', 'probabilities'}`` in inference mode."""
  import jax

  def serve(variables, images):
    logits = model.apply(variables, images, train=False)
    return {'logits': logits, 'probabilities': jax.nn.softmax(logits)}
  return serve


def pixel_function(model, prep):
  """``(variables, pixels) -> {'logits', 'probabilities'}``: uint8 pixels normalised as in
  evaluation (``prep.mean``, ``prep.std``), then :func:`inference_function`."""
  from effnet_jax.data.device_augment import normalize
  serve = inference_function(model)
  return lambda variables, pixels: serve(variables, normalize(pixels, prep.mean, prep.std))


def signatures(prep) -> dict[str, dict[str, Any]]:
  """What each signature takes (``effnet_jax.json``): its input's name, dtype and shape, and
  the preprocessing the caller does."""
  size = prep.eval_image_size
  crop = 'centre crop, resize' if prep.crop_mode == 'center' else 'resize'
  return {
      SIGNATURE: {'input': INPUTS[SIGNATURE], 'dtype': 'float32', 'shape': [-1, size, size, 3],
                  'preprocessing': f'{crop}, (x / 255 - mean) / std'},
      UINT8_SIGNATURE: {'input': INPUTS[UINT8_SIGNATURE], 'dtype': 'uint8',
                        'shape': [-1, size, size, 3], 'preprocessing': crop}}


def save_saved_model(model, variables: dict[str, Any], directory: str, prep,
                     platforms=DEFAULT_PLATFORMS, batch: int | None = None) -> None:
  """``model`` with ``variables`` as a SavedModel with both signatures, taking
  [batch, N, N, 3] (N = ``prep.eval_image_size``; ``batch=None``: any batch size)."""
  import tensorflow as tf
  from jax.experimental import jax2tf

  size = prep.eval_image_size
  shape = f'(b, {size}, {size}, 3)' if batch is None else None

  def convert(function):
    return jax2tf.convert(function, with_gradient=False, polymorphic_shapes=[None, shape],
                          native_serialization_platforms=tuple(platforms))

  serve_images = convert(inference_function(model))
  serve_pixels = convert(pixel_function(model, prep))
  module = tf.Module()
  module.weights = tf.nest.map_structure(lambda x: tf.Variable(np.asarray(x), trainable=False),
                                         variables)
  spec = lambda dtype, name: [tf.TensorSpec([batch, size, size, 3], dtype, name=name)]
  # (not ``module.serve``: the TFLite converter takes a SavedModel with that attribute for a
  # Keras export and converts its serving_default alone)
  module.serve_images = tf.function(lambda images: serve_images(module.weights, images),
                                    autograph=False, input_signature=spec(tf.float32, 'images'))
  module.serve_pixels = tf.function(lambda pixels: serve_pixels(module.weights, pixels),
                                    autograph=False, input_signature=spec(tf.uint8, 'pixels'))
  tf.saved_model.save(module, directory, signatures={SIGNATURE: module.serve_images,
                                                     UINT8_SIGNATURE: module.serve_pixels})


def convert_tflite(saved_model_dir: str, representative: np.ndarray | None = None) -> bytes:
  """Both signatures of a SavedModel as a float32 TFLite flatbuffer (built-in ops); with
  ``representative`` (uint8 pixels [count, N, N, 3]) the uint8 signature alone, fully quantised
  with those images as the calibration set: uint8 input, int8 outputs, int8 built-in ops."""
  import tensorflow as tf
  if representative is None:
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[SIGNATURE, UINT8_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                       signature_keys=[UINT8_SIGNATURE])
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = lambda: ({'pixels': p[None]} for p in representative)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  converter.inference_input_type = tf.uint8
  converter.inference_output_type = tf.int8
  return converter.convert()


def convert_tflite_int8(model, variables: dict[str, Any], prep,
                        representative: np.ndarray) -> bytes:
  """The uint8 signature fully quantised (:func:`convert_tflite`), for a batch of 1.

  Converted from a batch-1 SavedModel: with static shapes the converter folds BatchNorm into the
  convolutions and fuses the activations, so each int8 range is that of a folded layer; a free
  batch size leaves BatchNorm and the activations as separate broadcast ops, each quantised on
  its own (eight times as many ops, and most of the real Lite0's top-1 classes lost: see
  docs/predict_export.md). The converter bakes the batch of 1 into the graph (it broadcasts
  [1, C] against [1, H, W, C]): the file does not resize."""
  with tempfile.TemporaryDirectory() as directory:
    save_saved_model(model, variables, directory, prep, platforms=('cpu',), batch=1)
    return convert_tflite(directory, representative)


def int8_outputs(flatbuffer: bytes) -> dict[str, dict[str, float]]:
  """The quantisation of an int8 model's outputs: ``float = scale * (q - zero_point)``."""
  runner = _tflite_runner(flatbuffer, UINT8_SIGNATURE)
  return {name: {'scale': float(detail['quantization'][0]),
                 'zero_point': int(detail['quantization'][1])}
          for name, detail in runner.get_output_details().items()}


def convert_onnx(model, variables: dict[str, Any], prep):
  """The uint8 signature as an ONNX model (``onnx.ModelProto``, jax2onnx): input ``pixels``
  uint8 [batch, N, N, 3] with a free batch size, outputs ``logits``, ``probabilities``."""
  import logging

  import jax
  import jax.numpy as jnp
  from jax2onnx import to_onnx

  serve = pixel_function(model, prep)

  def outputs(pixels):
    result = serve(variables, pixels)
    return tuple(result[name] for name in OUTPUTS)

  size = prep.eval_image_size
  plugins = logging.getLogger('jax2onnx.plugins.plugin_system')
  level = plugins.level
  # jax2onnx 0.13 logs a traceback for its dm_pix plugins (which do not import with jax 0.10)
  # and prints each flax Conv it converts
  plugins.setLevel(logging.ERROR)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      proto = to_onnx(outputs, [jax.ShapeDtypeStruct(('batch', size, size, 3), jnp.uint8)],
                      input_names=['pixels'], output_names=list(OUTPUTS))
  finally:
    plugins.setLevel(level)
  # jax2onnx annotates some intermediate tensors with the shapes of their NCHW twins; without
  # the annotations ONNX Runtime infers them itself (and no longer warns of a mismatch).
  del proto.graph.value_info[:]
  return proto


def folder_pixels(folder: str, prep, count: int | None = None) -> tuple[np.ndarray, list[str]]:
  """Up to ``count`` images under ``folder`` (all subfolders) as the uint8 signature takes
  them (``effnet_jax.predict.load_pixels``), in an order shuffled with a fixed seed (a folder
  of class subfolders gives a mix of classes); returns them and the files that are not readable
  images (skipped)."""
  from effnet_jax.predict import ImageError, load_pixels
  paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                 for name in names)
  pixels, skipped = [], []
  for index in np.random.default_rng(0).permutation(len(paths)):
    if count is not None and len(pixels) == count:
      break
    try:
      pixels.append(load_pixels(paths[index], prep))
    except ImageError as error:
      skipped.append(str(error))
  if not pixels:
    raise ValueError(f'{folder}: no readable images')
  return np.stack(pixels), skipped


def _tflite_runner(model: str | bytes, signature: str):
  import tensorflow as tf
  interpreter = (tf.lite.Interpreter(model_content=model) if isinstance(model, bytes)
                 else tf.lite.Interpreter(model_path=model))
  return interpreter.get_signature_runner(signature)


def _tflite_logits(path: str, signature: str) -> Callable[[np.ndarray], np.ndarray]:
  """Float32 logits of a TFLite signature (an int8 output dequantised), a batch-1 file run
  one image at a time."""
  runner = _tflite_runner(path, signature)
  name = INPUTS[signature]
  one_at_a_time = runner.get_input_details()[name]['shape_signature'][0] == 1
  detail = runner.get_output_details()['logits']
  scale, zero_point = detail['quantization']

  def logits(x):
    result = runner(**{name: x})['logits']
    if detail['dtype'] == np.int8:
      return scale * (result.astype(np.float32) - zero_point)
    return result
  if one_at_a_time:
    return lambda x: np.concatenate([logits(x[i:i + 1]) for i in range(len(x))])
  return logits


def _saved_model_logits(output: str, signature: str) -> Callable[[np.ndarray], np.ndarray]:
  import tensorflow as tf
  function = tf.saved_model.load(output).signatures[signature]
  return lambda x: function(**{INPUTS[signature]: tf.constant(x)})['logits'].numpy()


def _onnx_logits(path: str) -> Callable[[np.ndarray], np.ndarray]:
  import onnxruntime
  session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
  return lambda x: session.run(['logits'], {INPUTS[UINT8_SIGNATURE]: x})[0]


def artifacts(output: str) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]:
  """Each exported computation that ``output``'s ``effnet_jax.json`` lists: ``'FILE
  SIGNATURE'`` -> (function of its input returning float32 logits, the input it takes:
  'images' or 'pixels')."""
  with open(os.path.join(output, METADATA)) as f:
    files = json.load(f)['files']
  logits = {SAVED_MODEL: lambda signature: _saved_model_logits(output, signature),
            TFLITE: lambda signature: _tflite_logits(os.path.join(output, TFLITE), signature),
            TFLITE_INT8: lambda signature: _tflite_logits(os.path.join(output, TFLITE_INT8),
                                                          signature),
            ONNX: lambda signature: _onnx_logits(os.path.join(output, ONNX))}
  return {f'{file} {signature}': (logits[file](signature), INPUTS[signature])
          for file, entry in files.items() for signature in entry['signatures']}


def agreement(weights: str, output: str, pixels: np.ndarray, image_size: int = 0,
              batch_size: int = 16) -> dict[str, dict[str, float]]:
  """Each exported computation of ``output`` against the JAX model of ``weights`` on the same
  images (``pixels``: uint8 [count, N, N, 3], e.g. :func:`folder_pixels`; the float signatures
  get them normalised by the JAX model's own normalisation): per computation the images whose
  top-1 class is the JAX model's (``top1``, of ``images``) and the largest absolute logit error
  (``max_logit_error``; ``largest_logit``: the largest absolute JAX logit, for scale)."""
  import jax

  from effnet_jax.data.device_augment import normalize
  from effnet_jax.predict import eval_preprocessing
  from effnet_jax.pretrained import load_pretrained_with_meta

  model, variables, _, config = load_pretrained_with_meta(weights, **INFERENCE_OVERRIDES)
  prep = eval_preprocessing(config, image_size)
  reference = jax.jit(pixel_function(model, prep))
  normalise = jax.jit(lambda x: normalize(x, prep.mean, prep.std))
  batches = [pixels[i:i + batch_size] for i in range(0, len(pixels), batch_size)]
  inputs = {'pixels': batches, 'images': [np.asarray(normalise(b)) for b in batches]}
  expected = np.concatenate([np.asarray(reference(variables, b)['logits']) for b in batches])
  results = {}
  for name, (run, takes) in artifacts(output).items():
    got = np.concatenate([run(x) for x in inputs[takes]])
    results[name] = {'images': len(pixels),
                     'top1': int((got.argmax(-1) == expected.argmax(-1)).sum()),
                     'max_logit_error': float(np.abs(got - expected).max()),
                     'largest_logit': float(np.abs(expected).max())}
  return results


def export(weights: str, output: str, image_size: int = 0, tflite: bool = False,
           platforms=DEFAULT_PLATFORMS, representative: np.ndarray | None = None,
           onnx: bool = False) -> dict[str, Any]:
  """Writes ``output`` (see the module doc; ``representative``: uint8 pixels, writes the int8
  TFLite model); returns its metadata (``effnet_jax.json``)."""
  from effnet_jax.predict import class_labels, eval_preprocessing
  from effnet_jax.pretrained import load_pretrained_with_meta

  model, variables, meta, config = load_pretrained_with_meta(weights, **INFERENCE_OVERRIDES)
  if not config.num_classes:
    raise ValueError(f'{weights}: a feature extractor (num_classes=0); export needs a classifier')
  prep = eval_preprocessing(config, image_size)
  output = os.path.abspath(output)
  save_saved_model(model, variables, output, prep, platforms)
  files = {SAVED_MODEL: {'signatures': [SIGNATURE, UINT8_SIGNATURE], 'batch': -1}}
  if tflite:
    _write(output, TFLITE, convert_tflite(output))
    files[TFLITE] = {'signatures': [SIGNATURE, UINT8_SIGNATURE], 'batch': -1}
  if representative is not None:
    flatbuffer = convert_tflite_int8(model, variables, prep, representative)
    _write(output, TFLITE_INT8, flatbuffer)
    files[TFLITE_INT8] = {'signatures': [UINT8_SIGNATURE], 'batch': 1,
                          'outputs': int8_outputs(flatbuffer),
                          'representative_images': len(representative)}
  if onnx:
    _write(output, ONNX, convert_onnx(model, variables, prep).SerializeToString())
    files[ONNX] = {'signatures': [UINT8_SIGNATURE], 'batch': -1}
  metadata = {
      'model': meta['model'], 'overrides': meta['overrides'], 'source': meta['source'],
      'signatures': signatures(prep), 'outputs': list(OUTPUTS), 'files': files,
      'image_size': prep.eval_image_size, 'crop_fraction': prep.crop_fraction,
      'crop_mode': prep.crop_mode, 'interpolation': prep.interpolation,
      'mean': list(prep.mean), 'std': list(prep.std), 'platforms': list(platforms),
      'labels': class_labels(config.num_classes, meta.get('class_names'))}
  with open(os.path.join(output, METADATA), 'w') as f:
    json.dump(metadata, f, indent=1)
  return metadata


def _write(output: str, name: str, content: bytes) -> None:
  with open(os.path.join(output, name), 'wb') as f:
    f.write(content)


def format_agreement(results: dict[str, dict[str, float]]) -> str:
  """One line per exported computation."""
  return '\n'.join(
      f'{name}: top-1 {r["top1"]}/{r["images"]} as JAX, max |logit error| '
      f'{r["max_logit_error"]:.2e} (largest logit {r["largest_logit"]:.2f})'
      for name, r in results.items())


def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(PROGRAM, description=__doc__.split('\n')[0])
  parser.add_argument('--weights', required=True,
                      help='pretrained directory (model.json + variables/) or training workdir')
  parser.add_argument('--output', required=True, help='SavedModel directory to write')
  parser.add_argument('--image_size', type=int, default=0,
                      help="input resolution (default: the model's eval size)")
  parser.add_argument('--tflite', action='store_true', help='also write OUTPUT/model.tflite')
  parser.add_argument('--tflite_int8', action='store_true',
                      help='also write OUTPUT/model_int8.tflite (needs --representative_folder)')
  parser.add_argument('--representative_folder',
                      help='images (any subfolder) to calibrate the int8 model on')
  parser.add_argument('--representative_count', type=int, default=REPRESENTATIVE_COUNT,
                      help=f'calibration images to use at most (default {REPRESENTATIVE_COUNT})')
  parser.add_argument('--onnx', action='store_true',
                      help='also write OUTPUT/model.onnx (needs jax2onnx, onnx)')
  parser.add_argument('--check_folder',
                      help='compare every file written with the JAX model on these images')
  parser.add_argument('--platforms', default=','.join(DEFAULT_PLATFORMS),
                      help='platforms the SavedModel runs on (jax2tf native serialisation)')
  args = parser.parse_args(argv)
  if args.tflite_int8 != bool(args.representative_folder):
    parser.error('--tflite_int8 and --representative_folder go together')
  if args.representative_count < 1:
    parser.error('--representative_count must be positive')
  needed = ['jax2onnx', 'onnx'] + (['onnxruntime'] if args.check_folder else [])
  if args.onnx and not all(importlib.util.find_spec(name) for name in needed):
    parser.error(f'--onnx needs {", ".join(needed)}: the interop extras: launch/setup.sh --interop')
  cli.check_weights(PROGRAM, '--weights', args.weights)
  for flag, path in (('--representative_folder', args.representative_folder),
                     ('--check_folder', args.check_folder)):
    if path:
      cli.check_exists(PROGRAM, flag, path)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  from effnet_jax.checkpoints import CheckpointError  # (none restores)
  from effnet_jax.predict import eval_preprocessing
  from effnet_jax.pretrained import pretrained_config
  try:
    prep = eval_preprocessing(pretrained_config(args.weights), args.image_size)
    representative = None
    if args.representative_folder:
      representative, skipped = folder_pixels(args.representative_folder, prep,
                                              args.representative_count)
      print(f'{args.representative_folder}: {len(representative)} calibration images'
            + (f' ({len(skipped)} files skipped: not readable images)' if skipped else ''))
    metadata = export(args.weights, args.output, args.image_size, args.tflite,
                      [p for p in args.platforms.split(',') if p], representative, args.onnx)
    size = metadata['image_size']
    print(f'{args.output}: ' + ', '.join(metadata['files']) + f'; {SIGNATURE}(images float32 '
          f'[batch, {size}, {size}, 3]), {UINT8_SIGNATURE}(pixels uint8 [batch, {size}, {size}, '
          f'3]) -> logits, probabilities [batch, {len(metadata["labels"])}]')
    if args.check_folder:
      pixels, _ = folder_pixels(args.check_folder, prep)
      print(format_agreement(agreement(args.weights, args.output, pixels, args.image_size)))
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    print(f'{PROGRAM}: error: {error}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
