"""Train and eval iterators: shard -> ordered examples -> preprocessed numpy batches.

Determinism. The train stream is an endless sequence of global positions 0, 1, 2, ...; the batch
of step s holds positions ``[s * B, (s + 1) * B)`` (B = the global batch). Which example sits at a
position is a function of (seed, epoch) and its augmentation a function of (seed, position), both
through stateless TF random ops, so a pipeline started at ``start_step=s`` yields what one started
at 0 yields after s batches, whatever the tf.data threading.

Processes. Where a split has random access (image folders, data held in memory) every process
orders the whole split the same way and reads its slice ``[p * B/P, (p + 1) * B/P)`` of every
global batch: the global batch, hence the run, does not depend on the process count. A streamed
split (TFDS record files) is read as P disjoint per-process streams instead (keys folded with the
process index), which scales the reading but makes the batches depend on P.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from effnet_jax import pixel_limit
from effnet_jax.data import preprocess
from effnet_jax.data.config import DataConfig, DataError, DatasetInfo, Preprocessing
from effnet_jax.data.shards import IndexedShard, Shard, StreamedShard
from effnet_jax.data.sources import open_source

Batch = dict[str, np.ndarray]
_ENDLESS = 2**62  # end of the position range
_SHUFFLE, _AUGMENT = 0, 1  # what a random key is for
_AUTOTUNE = tf.data.AUTOTUNE


def _hide_accelerators() -> None:
  """JAX owns the accelerators: keep TensorFlow on the host CPU."""
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF ran before and already holds its devices: too late to hide them
    pass


def local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size < 1 or global_batch_size % process_count:
    raise ValueError(f'global batch size {global_batch_size} is not a positive multiple of '
                     f'the process count {process_count}')
  return global_batch_size // process_count


def _check_process(process_index: int, process_count: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, process_count={process_count})')


def _fold(key: tf.Tensor, *data) -> tf.Tensor:
  for value in data:
    key = tf.random.experimental.stateless_fold_in(key, value)
  return key


def process_key(seed: int, process_index: int) -> tf.Tensor:
  return tf.constant([seed, process_index], tf.int64)


def shuffled_index(position: tf.Tensor, num_examples: int, key: tf.Tensor) -> tf.Tensor:
  """The local example at a stream position: a new permutation of the shard every epoch."""
  epoch, offset = position // num_examples, position % num_examples
  return tf.random.experimental.index_shuffle(
      offset, _fold(key, _SHUFFLE, epoch), tf.constant(num_examples - 1, tf.int64))


def global_position(count, first_position: int, batch_size: int, process_index: int,
                    process_count: int):
  """The global stream position of this process's ``count``-th example (tensors or ints): its
  slice of every global batch of ``batch_size * process_count`` examples."""
  step, offset = count // batch_size, count % batch_size
  return first_position + (step * process_count + process_index) * batch_size + offset


def _indexed_train_examples(shard: IndexedShard, key: tf.Tensor, first_position: int,
                            batch_size: int, process_index: int, process_count: int
                            ) -> tf.data.Dataset:
  def fetch(count):
    position = global_position(count, first_position, batch_size, process_index, process_count)
    return position, shard.fetch(shuffled_index(position, shard.num_examples, key))
  return tf.data.Dataset.range(_ENDLESS).map(fetch, num_parallel_calls=_AUTOTUNE,
                                             deterministic=True)


def _streamed_train_examples(shard: StreamedShard, key: tf.Tensor, first_position: int,
                             shuffle_buffer: int) -> tf.data.Dataset:
  """Epochs of the fixed-order records, each shuffled through a buffer seeded by its epoch;
  a resumed stream skips the (not yet decoded) records of its first epoch's earlier steps."""
  records = shard.read()
  first_epoch, offset = divmod(first_position, shard.num_examples)

  def epoch(index):
    seed = tf.random.stateless_uniform([], _fold(key, _SHUFFLE, index), minval=None,
                                       dtype=tf.int64)
    return records.shuffle(shuffle_buffer, seed=seed)
  examples = tf.data.Dataset.range(first_epoch, _ENDLESS).flat_map(epoch).skip(offset)
  return tf.data.Dataset.zip((tf.data.Dataset.range(first_position, _ENDLESS), examples))


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  options.threading.max_intra_op_parallelism = 1  # parallelism across examples, not inside ops
  options.experimental_optimization.map_parallelization = True
  return options


def train_dataset(shard: Shard, prep: Preprocessing, batch_size: int, key: tf.Tensor,
                  first_position: int, shuffle_buffer: int, process_index: int = 0,
                  process_count: int = 1,
                  max_image_pixels: int = pixel_limit.MAX_IMAGE_PIXELS) -> tf.data.Dataset:
  """Batches of ``batch_size`` (this process's part of the global batch) from global stream
  position ``first_position`` on. An IndexedShard is the whole split, of which this process reads
  its slice of each global batch; a StreamedShard is this process's own part of the split, read
  from its position ``first_position // process_count``. An encoded image of more than
  ``max_image_pixels`` pixels fails the iteration undecoded, as a corrupt one does."""
  if isinstance(shard, IndexedShard):
    examples = _indexed_train_examples(shard, key, first_position, batch_size, process_index,
                                       process_count)
  else:
    examples = _streamed_train_examples(shard, key, first_position // process_count,
                                        shuffle_buffer)

  def to_model_input(position, example):
    image = preprocess.check_pixel_limit(example['image'], max_image_pixels)
    return {'images': preprocess.train_image(image, _fold(key, _AUGMENT, position), prep),
            'labels': tf.cast(example['label'], tf.int32)}
  return (examples.map(to_model_input, num_parallel_calls=_AUTOTUNE, deterministic=True)
          .batch(batch_size, drop_remainder=True)
          .prefetch(_AUTOTUNE)
          .with_options(_options()))


def eval_dataset(shard: Shard, prep: Preprocessing, batch_size: int, num_batches: int,
                 max_image_pixels: int = pixel_limit.MAX_IMAGE_PIXELS) -> tf.data.Dataset:
  """The shard in order, then padding (mask 0) up to ``num_batches`` full batches (the pixel
  limit as in :func:`train_dataset`)."""
  if isinstance(shard, IndexedShard):
    examples = tf.data.Dataset.range(shard.num_examples).map(
        shard.fetch, num_parallel_calls=_AUTOTUNE, deterministic=True)
  else:
    examples = shard.read()

  def to_model_input(example):
    image = preprocess.check_pixel_limit(example['image'], max_image_pixels)
    return {'images': preprocess.eval_image(image, prep),
            'labels': tf.cast(example['label'], tf.int32), 'mask': tf.constant(1.0)}
  padding = tf.data.Dataset.from_tensors({
      'images': tf.zeros([prep.eval_image_size, prep.eval_image_size, 3]),
      'labels': tf.constant(0), 'mask': tf.constant(0.0)}).repeat()
  return (examples.map(to_model_input, num_parallel_calls=_AUTOTUNE, deterministic=True)
          .concatenate(padding)
          .take(num_batches * batch_size)
          .batch(batch_size)
          .prefetch(_AUTOTUNE)
          .with_options(_options()))


class BatchIterator(Iterator[Batch]):
  """Numpy batches of a pipeline. Where decoding fails it names the unreadable files of the
  failing batch (or, without files, an image over the pixel limit); ``skipped_images`` lists the
  files left out (``on_bad_image='skip'``)."""

  def __init__(self, dataset: tf.data.Dataset, shard: Shard,
               batch_indices: Callable[[int], np.ndarray]):
    self._batches = dataset.as_numpy_iterator()
    self._shard = shard
    self._batch_indices = batch_indices  # batch number -> local indices of its examples
    self._count = 0
    self.skipped_images = shard.skipped

  def __next__(self) -> Batch:
    try:
      batch = next(self._batches)
    except tf.errors.OpError as error:  # e.g. a corrupt image, or a file deleted since listed
      too_many = pixel_limit.over_limit(error.message)  # an image over max_image_pixels
      if isinstance(self._shard, IndexedShard) and self._shard.find_unreadable:
        names = self._shard.find_unreadable(self._batch_indices(self._count))
        if names:
          among = f', among them an image of {too_many}' if too_many else ''
          raise DataError(f'unreadable image files {names}{among} (on_bad_image=\'error\'; '
                          "on_bad_image='skip' leaves them out)") from error
      if too_many:  # a TFDS example: no file to name or leave out
        raise DataError(f'an image of {too_many}: raise data.max_image_pixels to decode it, '
                        'or leave it out of the data set') from error
      raise
    self._count += 1
    return batch


def dataset_info(data: DataConfig) -> DatasetInfo:
  _hide_accelerators()
  source = open_source(data)
  return DatasetInfo(
      num_classes=len(source.class_names),
      num_train_examples=source.train.num_examples if source.train else 0,
      num_eval_examples=source.eval.num_examples if source.eval else 0,
      class_names=source.class_names)


def train_iterator(data: DataConfig, prep: Preprocessing, global_batch_size: int, seed: int,
                   start_step: int = 0, process_index: int = 0, process_count: int = 1,
                   start_position: int | None = None) -> Iterator[Batch]:
  """Endless batches ``{'images': float32 [B, S, S, 3], 'labels': int32 [B]}``: this process's
  part (B = global_batch_size // process_count) of global step start_step + k's batch k. With
  ``prep.augment_on_device`` the images are the uint8 crops (the train step augments them).

  ``start_position`` (the global stream position, overriding ``start_step * global_batch_size``)
  continues a stream whose batch size changed on the way (curriculum stages with their own batch
  sizes)."""
  _hide_accelerators()
  _check_process(process_index, process_count)
  batch_size = local_batch_size(global_batch_size, process_count)
  split = open_source(data).split('train')
  first_position = (start_step * global_batch_size if start_position is None
                    else int(start_position))
  if split.random_access:  # the whole split, in the same order on every process
    shard, key = split.shard(0, 1), process_key(seed, 0)
  else:
    shard, key = split.shard(process_index, process_count), process_key(seed, process_index)
  if shard.num_examples == 0:
    raise DataError(f'process {process_index} of {process_count} has no train examples')

  def batch_indices(count: int) -> np.ndarray:
    counts = range(count * batch_size, (count + 1) * batch_size)
    if isinstance(shard, IndexedShard):
      positions = [global_position(c, first_position, batch_size, process_index, process_count)
                   for c in counts]
    else:
      positions = [first_position // process_count + c for c in counts]
    return np.array([int(shuffled_index(tf.constant(position, tf.int64), shard.num_examples,
                                        key))
                     for position in positions])
  dataset = train_dataset(shard, prep, batch_size, key, first_position, data.shuffle_buffer,
                          process_index, process_count, data.max_image_pixels)
  return BatchIterator(dataset, shard, batch_indices)


def eval_iterator(data: DataConfig, prep: Preprocessing, global_batch_size: int,
                  process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """One pass over this process's eval shard: ``{'images', 'labels', 'mask'}`` batches, the last
  padded (mask 0); every process yields the same number of batches."""
  _hide_accelerators()
  _check_process(process_index, process_count)
  batch_size = local_batch_size(global_batch_size, process_count)
  split = open_source(data).split('eval')
  num_batches = max(-(-size // batch_size) for size in split.shard_sizes(process_count))
  shard = split.shard(process_index, process_count)

  def batch_indices(count: int) -> np.ndarray:
    return np.arange(count * batch_size, min((count + 1) * batch_size, shard.num_examples))
  return BatchIterator(eval_dataset(shard, prep, batch_size, num_batches, data.max_image_pixels),
                       shard, batch_indices)
