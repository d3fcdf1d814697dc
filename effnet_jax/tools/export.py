"""Export weights to a TensorFlow SavedModel (jax2tf) and, optionally, TensorFlow Lite.

  python -m effnet_jax.tools.export --weights DIR --output OUT [--image_size N] [--tflite]
      [--platforms cpu,cuda,tpu]

``DIR`` is a pretrained directory or a training workdir. The model runs in inference mode:
BatchNorm uses its running statistics, dropout and stochastic depth are off, float32 throughout.
``OUT`` gets

  saved_model.pb, variables/  signature ``serving_default``: ``images`` float32
                              [batch, N, N, 3] -> ``logits``, ``probabilities`` float32
                              [batch, classes]; the batch size is free, N is fixed (default the
                              model's eval size)
  effnet_jax.json             what the inputs must be: the model's preprocessing (resize/crop,
                              interpolation, mean/std) and the class labels
  model.tflite                with --tflite: the same signature, TFLite built-in ops only

The images are already preprocessed as for evaluation (``effnet_jax.predict.load_image``):
RGB, centre-cropped and resized to N x N, ``(x / 255 - mean) / std``. The weights are stored
as SavedModel variables (no 2 GB graph limit); the computation is serialised as StableHLO
(jax2tf native serialisation) for the ``--platforms`` listed.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from effnet_jax import cli

PROGRAM = 'effnet_jax.tools.export'
SIGNATURE = 'serving_default'
METADATA = 'effnet_jax.json'
TFLITE = 'model.tflite'
DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')
# Settings the exported computation is built with, whatever the weights were trained with.
INFERENCE_OVERRIDES = dict(dtype='float32', depthwise_impl='xla', bn_axis_name=None)


def inference_function(model):
  """``(variables, images) -> {'logits', 'probabilities'}`` in inference mode."""
  import jax

  def serve(variables, images):
    logits = model.apply(variables, images, train=False)
    return {'logits': logits, 'probabilities': jax.nn.softmax(logits)}
  return serve


def save_saved_model(model, variables: dict[str, Any], directory: str, image_size: int,
                     platforms=DEFAULT_PLATFORMS) -> None:
  """``model`` with ``variables`` as a SavedModel taking [batch, image_size, image_size, 3]."""
  import numpy as np
  import tensorflow as tf
  from jax.experimental import jax2tf

  converted = jax2tf.convert(
      inference_function(model), with_gradient=False,
      polymorphic_shapes=[None, f'(b, {image_size}, {image_size}, 3)'],
      native_serialization_platforms=tuple(platforms))
  module = tf.Module()
  module.weights = tf.nest.map_structure(lambda x: tf.Variable(np.asarray(x), trainable=False),
                                         variables)
  module.serve = tf.function(
      lambda images: converted(module.weights, images), autograph=False,
      input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32,
                                     name='images')])
  tf.saved_model.save(module, directory, signatures={SIGNATURE: module.serve})


def convert_tflite(saved_model_dir: str) -> bytes:
  """The SavedModel's serving signature as a TFLite flatbuffer (float32, built-in ops)."""
  import tensorflow as tf
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


def export(weights: str, output: str, image_size: int = 0, tflite: bool = False,
           platforms=DEFAULT_PLATFORMS) -> dict[str, Any]:
  """Writes ``output`` (see the module doc); returns its metadata (``effnet_jax.json``)."""
  from effnet_jax.predict import class_labels, eval_preprocessing
  from effnet_jax.pretrained import load_pretrained_with_meta

  model, variables, meta, config = load_pretrained_with_meta(weights, **INFERENCE_OVERRIDES)
  if not config.num_classes:
    raise ValueError(f'{weights}: a feature extractor (num_classes=0); export needs a classifier')
  prep = eval_preprocessing(config, image_size)
  output = os.path.abspath(output)
  save_saved_model(model, variables, output, prep.eval_image_size, platforms)
  metadata = {
      'model': meta['model'], 'overrides': meta['overrides'], 'source': meta['source'],
      'signature': SIGNATURE, 'input': 'images', 'outputs': ['logits', 'probabilities'],
      'image_size': prep.eval_image_size, 'crop_fraction': prep.crop_fraction,
      'crop_mode': prep.crop_mode, 'interpolation': prep.interpolation,
      'mean': list(prep.mean), 'std': list(prep.std), 'platforms': list(platforms),
      'labels': class_labels(config.num_classes, meta.get('class_names'))}
  with open(os.path.join(output, METADATA), 'w') as f:
    json.dump(metadata, f, indent=1)
  if tflite:
    with open(os.path.join(output, TFLITE), 'wb') as f:
      f.write(convert_tflite(output))
  return metadata


def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(PROGRAM, description=__doc__.split('\n')[0])
  parser.add_argument('--weights', required=True,
                      help='pretrained directory (model.json + variables/) or training workdir')
  parser.add_argument('--output', required=True, help='SavedModel directory to write')
  parser.add_argument('--image_size', type=int, default=0,
                      help="input resolution (default: the model's eval size)")
  parser.add_argument('--tflite', action='store_true', help='also write OUTPUT/model.tflite')
  parser.add_argument('--platforms', default=','.join(DEFAULT_PLATFORMS),
                      help='platforms the SavedModel runs on (jax2tf native serialisation)')
  args = parser.parse_args(argv)
  cli.check_weights(PROGRAM, '--weights', args.weights)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  from effnet_jax.checkpoints import CheckpointError  # (none restores)
  try:
    metadata = export(args.weights, args.output, args.image_size, args.tflite,
                      [p for p in args.platforms.split(',') if p])
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    print(f'{PROGRAM}: error: {error}', file=sys.stderr)
    return 1
  size = metadata['image_size']
  print(f'{args.output}: SavedModel, {SIGNATURE}(images float32 [batch, {size}, {size}, 3]) -> '
        f'logits, probabilities [batch, {len(metadata["labels"])}]' +
        (f'; {os.path.join(args.output, TFLITE)}' if args.tflite else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
