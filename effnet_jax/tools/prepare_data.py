"""Writes an image-folder data set pre-resized to a maximum side, for a faster input pipeline.

  python -m effnet_jax.tools.prepare_data --input /data/imagenet/train \\
      --output /data/imagenet_train_320 --max_side 320
  python -m effnet_jax.main ... --config.data.train_folder=/data/imagenet_train_320

The output has the input's layout (``<class>/**/<file>``), so the same pipeline reads it
(``source='folder'``). Every image whose longer side exceeds ``--max_side`` is resized (Pillow,
antialiased bicubic; with JPEG draft mode, which decodes at 1/2, 1/4 or 1/8 scale first where
that stays above the target) and written as JPEG at ``--quality``; smaller images are copied
byte for byte; unreadable files, and images whose header gives more than ``--max_image_pixels``
pixels (they are not decoded), are reported and left out. The decode cost of the training
pipeline scales with the stored pixels, so a data set stored at the largest side the training
crops need (e.g. one per curriculum stage: ``--max_side`` 1.5x the stage's image size) spends
that much less time in JPEG decoding: docs/performance.md has the measurement.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import sys

from effnet_jax import cli
from effnet_jax.pixel_limit import MAX_IMAGE_PIXELS, open_image
from effnet_jax.train.metrics import ProgressBar

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp')


def resized_size(width: int, height: int, max_side: int) -> tuple[int, int]:
  """(width, height) scaled so the longer side is ``max_side`` (unchanged when it already fits);
  the shorter side is rounded and at least 1."""
  longer = max(width, height)
  if longer <= max_side:
    return width, height
  scale = max_side / longer
  return max(1, round(width * scale)), max(1, round(height * scale))


def output_path(source: str, input_root: str, output_root: str) -> str:
  """The output file of ``source``: the same relative path, ``.jpg`` where it is re-encoded."""
  return os.path.join(output_root, os.path.relpath(source, input_root))


def prepare_image(source: str, target: str, max_side: int, quality: int,
                  max_image_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
  """Writes ``source`` resized into ``target``; returns an error message for a bad image."""
  from PIL import Image
  os.makedirs(os.path.dirname(target), exist_ok=True)
  try:
    with open_image(source, max_image_pixels) as image:
      size = resized_size(image.width, image.height, max_side)
      if size == (image.width, image.height):
        shutil.copyfile(source, target)
        return None
      if image.format == 'JPEG':
        image.draft('RGB', size)  # DCT-domain downscale by a power of two, never below size
      resized = image.convert('RGB').resize(size, Image.BICUBIC)
    resized.save(os.path.splitext(target)[0] + '.jpg', 'JPEG', quality=quality)
  except (OSError, ValueError) as error:
    return f'{source}: {error}'
  return None


def list_files(root: str) -> list[str]:
  return sorted(os.path.join(directory, name) for directory, _, names in os.walk(root)
                for name in names if name.lower().endswith(IMAGE_EXTENSIONS))


def prepare(input_root: str, output_root: str, max_side: int, quality: int = 95,
            workers: int | None = None, progress: bool = True,
            max_image_pixels: int = MAX_IMAGE_PIXELS) -> list[str]:
  """Prepares every image under ``input_root``; returns the errors (unreadable files, images
  over ``max_image_pixels``)."""
  if os.path.abspath(input_root) == os.path.abspath(output_root):
    raise ValueError('--output must differ from --input')
  if not os.path.isdir(input_root):
    raise ValueError(f'--input {input_root!r} is not a directory')
  if max_side < 1 or max_image_pixels < 1 or not 1 <= quality <= 100:
    raise ValueError('--max_side and --max_image_pixels must be >= 1 and --quality in 1..100')
  sources = list_files(input_root)
  if not sources:
    raise ValueError(f'{input_root!r} holds no image files ({", ".join(IMAGE_EXTENSIONS)})')
  bar = ProgressBar(len(sources), 1, enabled=progress)
  errors = []
  # spawn: the caller may hold TensorFlow or JAX threads, which a forked child must not inherit
  with concurrent.futures.ProcessPoolExecutor(
      workers or os.cpu_count(), mp_context=multiprocessing.get_context('spawn')) as pool:
    jobs = [pool.submit(prepare_image, s, output_path(s, input_root, output_root), max_side,
                        quality, max_image_pixels) for s in sources]
    for done, job in enumerate(concurrent.futures.as_completed(jobs), 1):
      if job.result():
        errors.append(job.result())
      bar.update(done)
  bar.update(len(sources), force=True)
  bar.close()
  return errors


def main(argv=None) -> int:
  parser = cli.ArgumentParser('effnet_jax.tools.prepare_data', description=__doc__.split('\n')[0])
  parser.add_argument('--input', required=True, help='image folder (one sub-folder per class)')
  parser.add_argument('--output', required=True, help='where the resized copy goes')
  parser.add_argument('--max_side', type=int, required=True, help='longest side in pixels')
  parser.add_argument('--quality', type=int, default=95, help='JPEG quality of resized files')
  parser.add_argument('--workers', type=int, default=None, help='processes (default: cores)')
  parser.add_argument('--max_image_pixels', type=int, default=MAX_IMAGE_PIXELS,
                      help='skip an image whose header gives more pixels (width x height), '
                      f'without decoding it (default {MAX_IMAGE_PIXELS})')
  args = parser.parse_args(argv)
  try:
    errors = prepare(args.input, args.output, args.max_side, args.quality, args.workers,
                     max_image_pixels=args.max_image_pixels)
  except ValueError as error:
    parser.error(str(error))
  for error in errors:
    print(f'skipped unreadable image {error}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
