"""What the input pipeline is asked for: where the data is, how to preprocess it, what it holds."""
from __future__ import annotations

import dataclasses

from effnet_jax.pixel_limit import MAX_IMAGE_PIXELS

SOURCES = ('embedded', 'tfds', 'folder')
ON_BAD_IMAGE = ('error', 'skip')
TRAIN_CROPS = ('inception', 'pad_crop', 'none')
CROP_MODES = ('center', 'squash')
INTERPOLATIONS = ('bicubic', 'bilinear')
AUGMENTS = ('none', 'autoaugment', 'randaugment')


class DataError(ValueError):
  """The data cannot be read as configured; the message says what to do."""


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f'{field}={value!r}: expected one of {choices}')


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the examples come from (built by the trainer as ``DataConfig(**config.data)``)."""
  source: str = 'embedded'  # embedded | tfds | folder
  name: str = 'fashion_mnist'  # TFDS name for source='tfds'
  data_dir: str | None = None  # TFDS data_dir (None: the TFDS default)
  manual_dir: str | None = None  # TFDS manual download dir (imagenet2012 tar files)
  train_folder: str | None = None  # source='folder': one sub-folder per class
  eval_folder: str | None = None
  train_split: str = 'train'
  eval_split: str = 'test'  # 'validation' for imagenet2012
  shuffle_buffer: int = 16384  # streamed TFDS data only; in-memory data is fully permuted
  cache: bool = False  # hold the decoded examples in memory (small data sets)
  on_bad_image: str = 'error'  # error | skip (image folders: count and drop unreadable files)
  # An encoded image whose header gives more pixels (width x height) is unreadable, undecoded.
  max_image_pixels: int = MAX_IMAGE_PIXELS

  def __post_init__(self):
    _check_choice('source', self.source, SOURCES)
    _check_choice('on_bad_image', self.on_bad_image, ON_BAD_IMAGE)
    if self.shuffle_buffer < 1:
      raise ValueError(f'shuffle_buffer={self.shuffle_buffer}: expected >= 1')
    if self.max_image_pixels < 1:
      raise ValueError(f'max_image_pixels={self.max_image_pixels}: expected >= 1')
    for field in ('data_dir', 'manual_dir', 'train_folder', 'eval_folder'):
      # an empty path (a shell variable that was not set) would be the working directory
      if getattr(self, field) == '':
        raise ValueError(f'{field} is an empty string: give a directory, or leave it unset')


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """How images become model inputs (from the model metadata and the config's ``input`` and
  ``augment`` sections)."""
  image_size: int  # train resolution
  eval_image_size: int
  crop_fraction: float = 0.875  # eval: centre crop side / shorter side
  crop_mode: str = 'center'  # eval: center | squash (resize the whole image, no crop)
  interpolation: str = 'bicubic'  # bicubic | bilinear
  mean: tuple = (0.485, 0.456, 0.406)  # on [0, 1]
  std: tuple = (0.229, 0.224, 0.225)
  train_crop: str = 'inception'  # inception | pad_crop | none
  area_range: tuple = (0.08, 1.0)  # inception crop
  aspect_range: tuple = (3 / 4, 4 / 3)
  min_object_covered: float = 0.1
  pad_pixels: int = 2  # pad_crop
  flip: bool = True
  augment: str = 'none'  # none | autoaugment | randaugment
  randaug_num_layers: int = 2
  randaug_magnitude: float = 10.0  # float: curriculum stages pass e.g. 6.67
  # True: training batches leave the host as uint8 after crop and flip; RandAugment (if chosen)
  # and normalization run inside the train step (effnet_jax/data/device_augment.py).
  augment_on_device: bool = False

  def __post_init__(self):
    _check_choice('crop_mode', self.crop_mode, CROP_MODES)
    _check_choice('interpolation', self.interpolation, INTERPOLATIONS)
    _check_choice('train_crop', self.train_crop, TRAIN_CROPS)
    _check_choice('augment', self.augment, AUGMENTS)
    if self.augment_on_device and self.augment == 'autoaugment':
      raise ValueError("augment_on_device runs RandAugment only; use augment='randaugment' or "
                       'augment_on_device=False for AutoAugment')
    if not 0.0 < self.crop_fraction <= 1.0:
      raise ValueError(f'crop_fraction={self.crop_fraction}: expected in (0, 1]')
    if len(self.mean) != 3 or len(self.std) != 3:
      raise ValueError(f'mean={self.mean}, std={self.std}: expected three values each')


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the trainer needs to know about a data set."""
  num_classes: int
  num_train_examples: int  # of the whole train split (all processes)
  num_eval_examples: int
  class_names: tuple[str, ...]
