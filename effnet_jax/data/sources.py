"""DataConfig -> the class names and the train and eval splits of its source."""
from __future__ import annotations

import dataclasses

from effnet_jax.data import embedded, folders, tfds_data
from effnet_jax.data.config import DataConfig, DataError
from effnet_jax.data.shards import Split


@dataclasses.dataclass(frozen=True)
class Source:
  class_names: tuple[str, ...]
  train: Split | None  # None: not available (an image folder that was not given)
  eval: Split | None

  def split(self, role: str) -> Split:
    split = getattr(self, role)
    if split is None:
      raise DataError(f'this data source has no {role} split (set {role}_folder)')
    return split


def _tfds_source(builder, data: DataConfig) -> Source:
  return Source(class_names=tfds_data.class_names(builder),
                train=tfds_data.TfdsSplit(builder, data.train_split, data.cache),
                eval=tfds_data.TfdsSplit(builder, data.eval_split, data.cache))


def _builder(data: DataConfig):
  if data.source == 'embedded':
    return embedded.fashion_mnist_builder(data.data_dir)
  return tfds_data.tfds_builder(data.name, data.data_dir, data.manual_dir)


def split_names(data: DataConfig) -> tuple[str, ...]:
  """The split names of a TFDS (or the embedded) data set."""
  return tuple(_builder(data).info.splits.keys())


def open_source(data: DataConfig) -> Source:
  if data.source in ('embedded', 'tfds'):
    return _tfds_source(_builder(data), data)
  class_names, train, eval_ = folders.folder_splits(data.train_folder, data.eval_folder,
                                                    data.on_bad_image, data.max_image_pixels)
  return Source(class_names=class_names, train=train, eval=eval_)
