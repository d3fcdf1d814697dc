"""TFDS data sets (and the embedded one, which is a local TFDS data set) as splits of shards."""
from __future__ import annotations

import collections
import logging

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from effnet_jax.data.config import DataError
from effnet_jax.data.shards import IndexedShard, StreamedShard, in_memory_shard

_LOAD_BATCH = 4096
# TFDS's own batch decoder (decode_batch_example) reads FeatureConnector.dtype, which TFDS
# deprecates: its warning, in the log of every run, is about TFDS's code, not a user's.
logging.getLogger('absl').addFilter(
    lambda record: not record.getMessage().startswith('`FeatureConnector.dtype` is deprecated'))
# (builder data_dir, subsplit) -> the shard held in memory, least recently used first
_LOADED: collections.OrderedDict[tuple[str, str], IndexedShard] = collections.OrderedDict()


def _not_prepared(name: str, data_dir: str | None, reason: str = '') -> DataError:
  where = f'data_dir {data_dir!r}' if data_dir else 'the default TFDS data_dir'
  data_dir_arg = f', data_dir={data_dir!r}' if data_dir else ''
  return DataError(
      f'TFDS data set {name!r} is not prepared in {where}{reason}. effnet_jax never downloads '
      'at run time (without internet access a TFDS download retries for minutes, then fails). '
      'Prepare it once where there is internet access, e.g. `python -c "import '
      f"tensorflow_datasets as tfds; tfds.builder('{name}'{data_dir_arg}).download_and_prepare()"
      '"` (then copy the data_dir here if that was another machine); for data sets with a '
      'manual download such as imagenet2012, put the downloaded files (ILSVRC2012_img_train.tar, '
      'ILSVRC2012_img_val.tar) in a directory and set manual_dir to it.')


def _prepare_from_manual_dir(builder: tfds.core.DatasetBuilder, name: str,
                             data_dir: str | None, manual_dir: str) -> None:
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, try_download_gcs=False))
  except Exception as error:  # TFDS raises many kinds; all mean the same to the user
    raise _not_prepared(name, data_dir, f', and preparing it from manual_dir '
                        f'{manual_dir!r} failed ({type(error).__name__}: {error})') from error


def tfds_builder(name: str, data_dir: str | None, manual_dir: str | None
                 ) -> tfds.core.DatasetBuilder:
  """The builder of a prepared TFDS data set; one with a manual download is prepared from
  ``manual_dir`` where it is not yet."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as error:
    raise DataError(f'TFDS has no data set named {name!r} (tfds.list_builders() lists '
                    'them)') from error
  if builder.is_prepared():
    return builder
  if manual_dir and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    _prepare_from_manual_dir(builder, name, data_dir, manual_dir)
    return builder
  raise _not_prepared(name, data_dir)


class TfdsSplit:
  """One split of a TFDS data set; process p reads ``tfds.even_splits(split, n)[p]``."""

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str, cache: bool):
    self._builder = builder
    self._split = split
    self._cache = cache
    self.random_access = cache  # held in memory: indexed
    self._image_key, self._label_key = builder.info.supervised_keys or ('image', 'label')
    try:
      self.num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError) as error:
      raise DataError(f'TFDS data set {builder.name!r} has no split {split!r}; it has '
                      f'{tuple(builder.info.splits.keys())}') from error

  def _subsplit(self, process_index: int, process_count: int):
    return tfds.even_splits(self._split, n=process_count)[process_index]

  def shard_sizes(self, process_count: int) -> list[int]:
    return [self._builder.info.splits[self._subsplit(p, process_count)].num_examples
            for p in range(process_count)]

  def _as_dataset(self, subsplit, decode_image: bool) -> tf.data.Dataset:
    decoders = None if decode_image else {self._image_key: tfds.decode.SkipDecoding()}
    dataset = self._builder.as_dataset(split=subsplit, shuffle_files=False, decoders=decoders)
    return dataset.map(lambda ex: {'image': ex[self._image_key],
                                   'label': tf.cast(ex[self._label_key], tf.int64)})

  def _load(self, subsplit) -> IndexedShard:
    """All of a shard in memory: decoded where the image shape is fixed, else encoded. The
    last two loaded shards are kept (a train and an eval split): a process that trains one run
    after another (an ablation's rows) reads them once, not once per run."""
    key = (self._builder.data_dir, str(subsplit))
    if key in _LOADED:
      _LOADED.move_to_end(key)
      return _LOADED[key]
    shard = self._read(subsplit)
    _LOADED[key] = shard
    while len(_LOADED) > 2:
      _LOADED.popitem(last=False)
    return shard

  def _batched_records(self, subsplit) -> tf.data.Dataset | None:
    """The subsplit's records parsed a batch at a time, images decoded by the feature's own
    batch decoder: the same arrays as ``as_dataset``, 2-3x faster for small images (its
    per-example parsing dominated: 60,000 Fashion-MNIST images in 1.4 s instead of 3.3 s).
    None where the data set is not stored as TFRecord images with integer labels, or its files
    are not all there (``tfds.testing.mock_data`` replaces ``as_dataset`` alone)."""
    info = self._builder.info
    image, label = info.features[self._image_key], info.features[self._label_key]
    if (info.file_format != tfds.core.FileFormat.TFRECORD
        or not isinstance(image, tfds.features.Image)
        or not isinstance(label, tfds.features.ClassLabel)):
      return None
    instructions = info.splits[subsplit].file_instructions
    if not instructions or not all(tf.io.gfile.exists(f.filename) for f in instructions):
      return None
    files = [tf.data.TFRecordDataset(f.filename).skip(f.skip).take(f.take) for f in instructions]
    records = files[0]
    for more in files[1:]:
      records = records.concatenate(more)
    spec = {self._image_key: tf.io.FixedLenFeature([], tf.string),
            self._label_key: tf.io.FixedLenFeature([], tf.int64)}

    def decode(serialized):
      ex = tf.io.parse_example(serialized, spec)
      return {'image': image.decode_batch_example(ex[self._image_key]),
              'label': tf.cast(ex[self._label_key], tf.int64)}
    return records.batch(_LOAD_BATCH).map(decode)

  def _read(self, subsplit) -> IndexedShard:
    image_shape = self._builder.info.features[self._image_key].shape
    decode_image = None not in image_shape
    images = [np.zeros((0, *image_shape), np.uint8) if decode_image else np.zeros(0, object)]
    labels = [np.zeros(0, np.int64)]
    batches = self._batched_records(subsplit) if decode_image else None
    if batches is None:
      batches = self._as_dataset(subsplit, decode_image).batch(_LOAD_BATCH)
    for batch in batches.as_numpy_iterator():
      images.append(batch['image'])
      labels.append(batch['label'])
    return in_memory_shard(np.concatenate(images), np.concatenate(labels))

  def shard(self, process_index: int, process_count: int) -> IndexedShard | StreamedShard:
    subsplit = self._subsplit(process_index, process_count)
    if self._cache:
      return self._load(subsplit)
    return StreamedShard(
        num_examples=self._builder.info.splits[subsplit].num_examples,
        read=lambda: self._as_dataset(subsplit, decode_image=False))


def class_names(builder: tfds.core.DatasetBuilder) -> tuple[str, ...]:
  _, label_key = builder.info.supervised_keys or ('image', 'label')
  return tuple(builder.info.features[label_key].names)
