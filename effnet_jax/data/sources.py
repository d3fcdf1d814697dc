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


def open_source(data: DataConfig) -> Source:
  if data.source == 'embedded':
    return _tfds_source(embedded.fashion_mnist_builder(data.data_dir), data)
  if data.source == 'tfds':
    return _tfds_source(tfds_data.tfds_builder(data.name, data.data_dir, data.manual_dir), data)
  class_names, train, eval_ = folders.folder_splits(data.train_folder, data.eval_folder,
                                                    data.on_bad_image, data.max_image_pixels)
  return Source(class_names=class_names, train=train, eval=eval_)
