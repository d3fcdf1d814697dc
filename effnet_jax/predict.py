"""Classify image files with a pretrained directory or a training run.

  python -m effnet_jax.predict --weights DIR [--json] [--top_k 5] [--image_size N]
      [--max_image_pixels N] IMAGE...

``DIR`` is a pretrained directory (``effnet_jax.pretrained``) or a training workdir. Each
image goes through the model's own evaluation preprocessing — the function the evaluation
pipeline uses (``effnet_jax.data.preprocess.eval_image``): centre crop of ``crop_fraction`` of the
shorter side (or the whole image for ``crop_mode='squash'``), resize to the eval size with the
model's interpolation, mean/std — so a file gets the same input here as in an evaluation.
The decoding is the pipeline's too: JPEG (also CMYK and grey), PNG, GIF, BMP, WebP and JPEG XL
by TensorFlow, the other formats Pillow reads (TIFF, ...) by Pillow.

Prints the top-k classes per image (probability, index, label); ``--json`` prints one object
per line instead: ``{"file": ..., "top5": [{"index": i, "label": "...", "prob": p}, ...]}``.
Labels: the directory's class names, else the ImageNet-1k labels for a 1000-class model (1001
classes: index 0 is ``background``), else ``class <i>``. A file that cannot be read, or whose
header gives more than ``--max_image_pixels`` pixels (it is not decoded), is reported on stderr
and skipped; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterable, Iterator

import numpy as np

from effnet_jax import cli
from effnet_jax.pixel_limit import MAX_IMAGE_PIXELS, over_limit

PROGRAM = 'effnet_jax.predict'
BACKGROUND = 'background'


def imagenet_labels() -> list[str]:
  """The 1000 ImageNet-1k class descriptions in the standard order (0 'tench, Tinca tinca' ...
  999 'toilet tissue, ...'), as shipped with tensorflow_datasets (no download)."""
  from tensorflow_datasets.datasets.siscore.labels import IMAGENET_LABELS_LIST
  labels = list(IMAGENET_LABELS_LIST)
  if len(labels) != 1000:
    raise RuntimeError(f'tensorflow_datasets ships {len(labels)} ImageNet labels, expected 1000')
  return labels


def imagenet_wnids() -> list[str]:
  """The 1000 ImageNet-1k WordNet ids in the standard order (0 'n01440764' ... 999 'n15075141'):
  the class folder names of the usual validation layout and TFDS imagenet2012's label names, as
  shipped with tensorflow_datasets (no download)."""
  from tensorflow_datasets.datasets.imagenet2012.imagenet_common import label_names_file
  wnids = label_names_file().read_text().split()
  if len(wnids) != 1000 or wnids != sorted(wnids):
    raise RuntimeError(f'tensorflow_datasets ships {len(wnids)} ImageNet WordNet ids, expected '
                       'the 1000 sorted ones')
  return wnids


def class_labels(num_classes: int, class_names: Iterable[str] | None = None) -> list[str]:
  """One label per model output."""
  if class_names:
    return list(class_names)
  if num_classes == 1000:
    return imagenet_labels()
  if num_classes == 1001:  # TF-slim / TF Hub layout: background first
    return [BACKGROUND] + imagenet_labels()
  return [f'class {i}' for i in range(num_classes)]


def eval_preprocessing(mcfg, image_size: int = 0):
  """The evaluation ``Preprocessing`` of a ``ModelConfig`` (at ``image_size`` if given)."""
  from effnet_jax.data import Preprocessing
  size = image_size or mcfg.eval_image_size
  return Preprocessing(image_size=size, eval_image_size=size, crop_fraction=mcfg.crop_fraction,
                       crop_mode=mcfg.crop_mode, interpolation=mcfg.interpolation,
                       mean=tuple(mcfg.mean), std=tuple(mcfg.std))


class ImageError(ValueError):
  """An input file that cannot be read or decoded; the message names the file."""


def load_pixels(path: str, prep, max_image_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
  """``path`` cropped and resized as for evaluation, before normalisation: uint8
  [eval_image_size, eval_image_size, 3] (the input of an export's uint8 signature);
  ``ImageError`` where it cannot be read or its header gives more than ``max_image_pixels``
  pixels."""
  import tensorflow as tf

  from effnet_jax.data.preprocess import NOT_AN_IMAGE, check_pixel_limit, eval_pixels
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      encoded = f.read()
  except (OSError, tf.errors.OpError) as error:
    reason = 'no such file' if not tf.io.gfile.exists(path) else (
        getattr(error, 'message', None) or error.strerror or str(error))
    raise ImageError(f'{path}: cannot read: {reason}') from None
  try:  # the evaluation pipeline's pixel limit and decoding (JPEG inside its crop window)
    return eval_pixels(check_pixel_limit(tf.constant(encoded), max_image_pixels), prep).numpy()
  except tf.errors.OpError as error:
    too_many = over_limit(error.message)
    if too_many:
      raise ImageError(f'{path}: {too_many}') from None
    reason = NOT_AN_IMAGE if NOT_AN_IMAGE in error.message else (
        error.message.strip().splitlines()[0])
    raise ImageError(f'{path}: not a readable image ({reason})') from None


def load_image(path: str, prep, max_image_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
  """``path`` as a model input: :func:`load_pixels` normalised, float32 [eval_image_size,
  eval_image_size, 3], the evaluation pipeline's input (``preprocess.eval_image``)."""
  from effnet_jax.data.preprocess import normalize
  return normalize(load_pixels(path, prep, max_image_pixels), prep.mean, prep.std).numpy()


def top_k(probabilities: np.ndarray, k: int, labels: list[str]) -> list[dict]:
  """The ``k`` most probable classes of one image, most probable first."""
  order = np.argsort(-probabilities, kind='stable')[:k]
  return [{'index': int(i), 'label': labels[i], 'prob': float(probabilities[i])} for i in order]


def padded_size(count: int) -> int:
  """The power of two a batch of ``count`` images is padded to."""
  return 1 << max(count - 1, 0).bit_length()


class Predictor:
  """A model with its weights, evaluation preprocessing and labels.

  ``Predictor(weights).predict_files(paths)`` yields one result per path, in order:
  ``{'file', 'top5': [...]}`` or ``{'file', 'error': message}``.
  """

  def __init__(self, weights: str, image_size: int = 0, batch_size: int = 16,
               max_image_pixels: int = MAX_IMAGE_PIXELS):
    import jax

    from effnet_jax.models.utils import apply_in_chunks
    from effnet_jax.pretrained import load_pretrained_with_meta
    # the fast kernels for the backend (on a CPU the unrolled depthwise conv: 5x the grouped one)
    self.model, self.variables, meta, self.config = load_pretrained_with_meta(
        weights, depthwise_impl='auto', conv_impl='auto')
    if not self.config.num_classes:
      raise ValueError(f'{weights}: a feature extractor (num_classes=0) has no classes to predict')
    self.labels = class_labels(self.config.num_classes, meta.get('class_names'))
    if len(self.labels) != self.config.num_classes:
      raise ValueError(f'{weights}: {len(self.labels)} class names for '
                       f'{self.config.num_classes} classes')
    self.prep = eval_preprocessing(self.config, image_size)
    self.batch_size = batch_size
    self.max_image_pixels = max_image_pixels
    # in cache-sized chunks of the batch on a CPU (models.utils.forward_chunk)
    self._probabilities = jax.jit(
        lambda variables, images: jax.nn.softmax(apply_in_chunks(self.model, variables, images)))

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    """Softmax outputs of a batch of preprocessed images, padded to the next power of two up
    to ``batch_size`` (one image runs at batch 1; at most log2(batch_size) + 2 programs)."""
    count = len(images)
    size = max(count, min(self.batch_size, padded_size(count)))
    padded = np.zeros((size,) + images.shape[1:], np.float32)
    padded[:count] = images
    return np.asarray(self._probabilities(self.variables, padded))[:count]

  def predict_files(self, paths: Iterable[str], k: int = 5) -> Iterator[dict]:
    paths = list(paths)
    key = f'top{k}'
    for start in range(0, len(paths), self.batch_size):
      chunk = paths[start:start + self.batch_size]
      images, errors = {}, {}
      for path in chunk:
        try:
          images[path] = load_image(path, self.prep, self.max_image_pixels)
        except ImageError as error:
          errors[path] = str(error)
      probabilities = dict(zip(images, self.probabilities(np.stack(list(images.values())))
                               )) if images else {}
      for path in chunk:
        if path in errors:
          yield {'file': path, 'error': errors[path]}
        else:
          yield {'file': path, key: top_k(probabilities[path], k, self.labels)}


def format_result(result: dict, k: int) -> str:
  lines = [result['file']]
  for entry in result[f'top{k}']:
    lines.append(f'  {entry["prob"]:7.4f}  {entry["index"]:4d}  {entry["label"]}')
  return '\n'.join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = cli.ArgumentParser(PROGRAM, description='Top-k classes of image files with a '
                              'pretrained directory or training run.')
  parser.add_argument('--weights', required=True,
                      help='pretrained directory (model.json + variables/), training workdir, '
                      'pretrained tag or hf-hub:ORG/REPO')
  parser.add_argument('--json', action='store_true', help='one JSON object per line')
  parser.add_argument('--top_k', type=int, default=5, help='classes per image (default 5)')
  parser.add_argument('--image_size', type=int, default=0,
                      help="eval resolution (default: the model's eval size)")
  parser.add_argument('--batch_size', type=int, default=16)
  parser.add_argument('--max_image_pixels', type=int, default=MAX_IMAGE_PIXELS,
                      help='skip an image whose header gives more pixels (width x height), '
                      f'without decoding it (default {MAX_IMAGE_PIXELS})')
  parser.add_argument('images', nargs='+', metavar='IMAGE')
  args = parser.parse_args(argv)
  if args.top_k < 1 or args.batch_size < 1 or args.max_image_pixels < 1 or args.image_size < 0:
    parser.error('--top_k, --batch_size and --max_image_pixels must be positive, '
                 '--image_size >= 0')
  cli.check_weights(PROGRAM, '--weights', args.weights)
  return args


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  from effnet_jax.checkpoints import CheckpointError  # (none restores)
  try:
    predictor = Predictor(args.weights, args.image_size, args.batch_size,
                          args.max_image_pixels)
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    print(f'{PROGRAM}: error: {error}', file=sys.stderr)
    return 1
  failed = 0
  for result in predictor.predict_files(args.images, args.top_k):
    if 'error' in result:
      print(f'{PROGRAM}: skipped {result["error"]}', file=sys.stderr, flush=True)
      failed += 1
    elif args.json:
      print(json.dumps(result), flush=True)
    else:
      print(format_result(result, args.top_k), flush=True)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
