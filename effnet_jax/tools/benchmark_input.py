"""Input-pipeline throughput: augmented training images per second per CPU core.

  python -m effnet_jax.tools.benchmark_input --generate /tmp/jpegs --num_images 512
  python -m effnet_jax.tools.benchmark_input --folder /tmp/jpegs --vs_timm
  python -m effnet_jax.tools.benchmark_input --folder /tmp/jpegs_320 --vs_timm  # pre-resized
                                    # (python -m effnet_jax.tools.prepare_data --max_side 320)

``--generate`` writes ImageNet-like JPEGs (70 % 500x375, 30 % 375x500, quality 96, about
ImageNet's mean file size) cut from the photographs bundled with scikit-image, in one sub-folder
per class, so ``--folder`` reads them as a ``source='folder'`` data set.

``--folder`` runs the real training pipeline of ``effnet_jax.data`` (``train_iterator``: read,
JPEG decode of the sampled crop only, Inception random resized crop, flip, RandAugment N=2 M=9,
normalisation, batching) and reports images/s of wall time and images per CPU-second of the
process (user + system time of all its threads): the per-core rate that decides how many host
cores a step needs. ``--vs_timm`` runs timm's training transform (``create_transform`` with
``rand-m9-mstd0.5-inc1``, bicubic) over the same files in a single-threaded worker process,
with the same two figures. Timing starts after ``--warmup_batches`` batches.
"""
from __future__ import annotations

import sys

if __name__ == '__main__':  # before TensorFlow loads: see effnet_jax/runtime.py
  from effnet_jax.runtime import use_caching_allocator
  use_caching_allocator()

import dataclasses
import json
import os
import subprocess
import time

import numpy as np

from effnet_jax import cli

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'hubble_deep_field', 'immunohistochemistry',
          'retina', 'rocket')
TIMM_RANDAUGMENT = 'rand-m9-mstd0.5-inc1'
_WORKER_FLAG = '--timm_worker'


@dataclasses.dataclass
class Rate:
  """Throughput of one pipeline over the same files."""
  pipeline: str
  images: int
  wall_s: float
  cpu_s: float

  @property
  def images_per_sec(self) -> float:
    return self.images / max(self.wall_s, 1e-9)

  @property
  def images_per_cpu_sec(self) -> float:
    return self.images / max(self.cpu_s, 1e-9)


# ---- generating a folder of ImageNet-like JPEGs ----

def photo_crop(photo: np.ndarray, width: int, height: int, rng: np.random.Generator
               ) -> np.ndarray:
  """A random crop of ``photo`` with the aspect ratio ``width / height`` (30-100 % of the
  largest such crop's side), resized to ``width x height``, randomly mirrored, with mild sensor
  noise (a resized photo without it compresses far better than a camera's JPEG)."""
  from PIL import Image
  h, w = photo.shape[:2]
  side = min(w / width, h / height) * rng.uniform(0.3, 1.0)
  crop_w, crop_h = max(int(width * side), 1), max(int(height * side), 1)
  x, y = rng.integers(0, w - crop_w + 1), rng.integers(0, h - crop_h + 1)
  image = Image.fromarray(photo[y:y + crop_h, x:x + crop_w]).resize((width, height),
                                                                    Image.BICUBIC)
  pixels = np.asarray(image, np.float32) + rng.normal(0.0, 4.0, (height, width, 3))
  if rng.random() < 0.5:
    pixels = pixels[:, ::-1]
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


LANDSCAPE, PORTRAIT = (500, 375), (375, 500)
# 70 % landscape, 30 % portrait, interleaved so that any 10 consecutive images keep the mix
SIZES = (LANDSCAPE, LANDSCAPE, PORTRAIT) * 3 + (LANDSCAPE,)


def generate(folder: str, num_images: int, num_classes: int = 4, quality: int = 96,
             seed: int = 0, sizes: tuple = SIZES) -> list[str]:
  """Writes ``num_images`` JPEGs to ``folder/class_<k>/<i>.jpg``; returns their paths."""
  import skimage.data
  from PIL import Image
  if num_images < 1 or num_classes < 1:
    raise ValueError('--num_images and --num_classes must be >= 1')
  photos = [getattr(skimage.data, name)() for name in PHOTOS]
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(num_images):
    directory = os.path.join(folder, f'class_{i % num_classes}')
    os.makedirs(directory, exist_ok=True)
    width, height = sizes[i % len(sizes)]
    pixels = photo_crop(photos[rng.integers(len(photos))], width, height, rng)
    path = os.path.join(directory, f'{i:06d}.jpg')
    Image.fromarray(pixels).save(path, quality=quality)
    paths.append(path)
  return paths


def list_jpegs(folder: str) -> list[str]:
  """The JPEG files under ``folder``, sorted (os.walk: the timm worker must not load TF)."""
  return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                for name in names if name.lower().endswith(('.jpg', '.jpeg')))


# ---- our pipeline ----

def preprocessing(image_size: int, augment: str = 'randaugment', magnitude: float = 9.0):
  """``augment``: 'randaugment' (on the host), 'none', or 'device' (RandAugment in the train
  step: the host pipeline stops after crop and flip and sends uint8)."""
  from effnet_jax.data import Preprocessing
  return Preprocessing(image_size=image_size, eval_image_size=image_size, interpolation='bicubic',
                       train_crop='inception',
                       augment='randaugment' if augment == 'device' else augment,
                       augment_on_device=augment == 'device', randaug_num_layers=2,
                       randaug_magnitude=magnitude)


def _cpu_seconds() -> float:
  return time.process_time()  # user + system time of every thread of this process


def measure_ours(folder: str, image_size: int = 224, batch_size: int = 64,
                 num_batches: int = 8, warmup_batches: int = 2,
                 augment: str = 'randaugment') -> Rate:
  """Times ``effnet_jax.data.train_iterator`` on an image folder."""
  from effnet_jax.data import DataConfig, train_iterator
  batches = train_iterator(DataConfig(source='folder', train_folder=folder),
                           preprocessing(image_size, augment), batch_size, seed=0)
  for _ in range(warmup_batches):
    next(batches)
  wall, cpu = time.perf_counter(), _cpu_seconds()
  for _ in range(num_batches):
    next(batches)
  return Rate(f'effnet_jax tf.data ({augment})', num_batches * batch_size,
              time.perf_counter() - wall, _cpu_seconds() - cpu)


# ---- timm's loader ----

def _patch_posterize() -> None:
  """timm's RandAugment asks Pillow >= 13 for 0-bit posterize, which it rejects: clamp to 1 bit,
  as Pillow < 13 effectively did."""
  from PIL import ImageOps
  from timm.data import auto_augment
  posterize = ImageOps.posterize
  auto_augment.ImageOps.posterize = lambda image, bits: posterize(image, max(int(bits), 1))


def measure_timm(paths: list[str], image_size: int = 224, num_images: int = 512,
                 warmup_images: int = 32, augment: bool = True) -> Rate:
  """timm's training transform over ``paths`` (cycled) in this process, one thread."""
  import torch
  from PIL import Image
  from timm.data import create_transform
  torch.set_num_threads(1)
  _patch_posterize()
  transform = create_transform(image_size, is_training=True, interpolation='bicubic',
                               auto_augment=TIMM_RANDAUGMENT if augment else None)

  def load(i):
    with open(paths[i % len(paths)], 'rb') as f:
      return transform(Image.open(f).convert('RGB'))
  for i in range(warmup_images):
    load(i)
  wall, cpu = time.perf_counter(), _cpu_seconds()
  for i in range(warmup_images, warmup_images + num_images):
    load(i)
  name = f'timm create_transform ({TIMM_RANDAUGMENT if augment else "no RandAugment"})'
  return Rate(name, num_images, time.perf_counter() - wall, _cpu_seconds() - cpu)


def measure_timm_in_subprocess(folder: str, **kwargs) -> Rate:
  """:func:`measure_timm` in a fresh process (PyTorch's and TensorFlow's LLVM builds clash)."""
  request = json.dumps({'folder': folder, **kwargs})
  done = subprocess.run([sys.executable, '-m', 'effnet_jax.tools.benchmark_input', _WORKER_FLAG,
                         request], capture_output=True, text=True, check=False)
  lines = done.stdout.strip().splitlines()
  if done.returncode or not lines:
    raise RuntimeError(f'the timm measurement failed (exit {done.returncode}):\n'
                       f'{done.stderr[-3000:]}')
  return Rate(**json.loads(lines[-1]))


def _timm_worker(request: str) -> int:
  kwargs = json.loads(request)
  rate = measure_timm(list_jpegs(kwargs.pop('folder')), **kwargs)
  print(json.dumps(dataclasses.asdict(rate)))
  return 0


def format_table(rates: list[Rate]) -> str:
  """Markdown: images/s, images per CPU-second and the ratio to the first timm row."""
  reference = next((r for r in rates if r.pipeline.startswith('timm')), None)
  lines = ['| pipeline | images | img/s (wall) | img per CPU-s (per core) | vs timm per core |',
           '| --- | --- | --- | --- | --- |']
  for r in rates:
    ratio = (f'{r.images_per_cpu_sec / reference.images_per_cpu_sec:.2f}x'
             if reference and r is not reference else '')
    lines.append(f'| {r.pipeline} | {r.images} | {r.images_per_sec:,.1f} | '
                 f'{r.images_per_cpu_sec:,.1f} | {ratio} |')
  return '\n'.join(lines)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == [_WORKER_FLAG]:
    return _timm_worker(argv[1])
  parser = cli.ArgumentParser('effnet_jax.tools.benchmark_input',
                              description=__doc__.split('\n')[0])
  action = parser.add_mutually_exclusive_group(required=True)
  action.add_argument('--generate', metavar='DIR', help='write ImageNet-like JPEGs here')
  action.add_argument('--folder', metavar='DIR', help='benchmark the pipelines on this folder')
  parser.add_argument('--num_images', type=int, default=512, help='--generate: how many')
  parser.add_argument('--num_classes', type=int, default=4, help='--generate: sub-folders')
  parser.add_argument('--quality', type=int, default=96, help='--generate: JPEG quality')
  parser.add_argument('--image_size', type=int, default=224)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--num_batches', type=int, default=8, help='timed batches')
  parser.add_argument('--warmup_batches', type=int, default=2)
  parser.add_argument('--augment', choices=('randaugment', 'none', 'device'),
                      default='randaugment',
                      help='device: RandAugment runs in the train step (augment_on_device); '
                      'the host pipeline sends uint8 crops and timm keeps its RandAugment')
  parser.add_argument('--vs_timm', action='store_true',
                      help="also time timm's transform on the same files (one core)")
  parser.add_argument('--json', help='write the results to this JSON file')
  args = parser.parse_args(argv)
  if args.generate:
    cli.require_extra(parser.program, 'skimage.data', '--generate (its photographs)')
    try:
      paths = generate(args.generate, args.num_images, args.num_classes, args.quality)
    except ValueError as error:
      parser.error(str(error))
    size = np.mean([os.path.getsize(p) for p in paths]) / 1024
    print(f'wrote {len(paths)} JPEGs to {args.generate} (mean {size:.0f} KiB)')
    return 0
  if min(args.batch_size, args.num_batches, args.image_size) < 1 or args.warmup_batches < 0:
    parser.error('--batch_size, --num_batches and --image_size must be >= 1')
  cli.check_exists(parser.program, '--folder', args.folder)
  if args.vs_timm:
    cli.require_extra(parser.program, 'timm', '--vs_timm')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  from effnet_jax.data import DataError
  try:
    rates = [measure_ours(args.folder, args.image_size, args.batch_size, args.num_batches,
                          args.warmup_batches, args.augment)]
  except DataError as error:
    parser.error(str(error))
  if args.vs_timm:
    rates.append(measure_timm_in_subprocess(
        args.folder, image_size=args.image_size, num_images=args.batch_size * args.num_batches,
        warmup_images=args.batch_size * args.warmup_batches,
        augment=args.augment != 'none'))
  print(f'# {args.folder}: {os.cpu_count()} cores')
  print(format_table(rates))
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump([dict(dataclasses.asdict(r), images_per_sec=r.images_per_sec,
                      images_per_cpu_sec=r.images_per_cpu_sec) for r in rates], f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
