"""Ordering, resume, sharding and eval padding of the train and eval pipelines."""
import collections

import numpy as np
import pytest
import tensorflow as tf

from data_helpers import example_ids, pixel_value, random_image
from effnet_jax.data import (DataConfig, Preprocessing, dataset_info, eval_iterator, pipeline,
                             train_iterator)
from effnet_jax.data.shards import StreamedShard, in_memory_shard

NUM_EXAMPLES, BATCH = 10, 4
PREP = Preprocessing(image_size=8, eval_image_size=8, train_crop='none', flip=False,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def numbered_arrays(count=NUM_EXAMPLES):
  images = np.stack([np.full((8, 8, 1), pixel_value(i), np.uint8) for i in range(count)])
  return images, np.arange(count) % 3


def numbered_shard(kind):
  images, labels = numbered_arrays()
  if kind == 'indexed':
    return in_memory_shard(images, labels)
  return StreamedShard(num_examples=NUM_EXAMPLES, read=lambda: tf.data.Dataset.from_tensor_slices(
      {'image': images, 'label': labels.astype(np.int64)}))


def stream_ids(shard, seed=0, start_step=0, steps=5, prep=PREP, shuffle_buffer=4):
  dataset = pipeline.train_dataset(shard, prep, BATCH, pipeline.process_key(seed, 0),
                                   start_step * BATCH, shuffle_buffer)
  return [example_ids(batch['images']) for batch in dataset.take(steps).as_numpy_iterator()]


@pytest.mark.parametrize('kind', ['indexed', 'streamed'])
def test_every_epoch_is_a_new_permutation(kind):
  ids = np.concatenate(stream_ids(numbered_shard(kind)))  # 20 positions = 2 epochs
  first, second = ids[:NUM_EXAMPLES], ids[NUM_EXAMPLES:]
  assert sorted(first) == sorted(second) == list(range(NUM_EXAMPLES))
  assert list(first) != list(second)


@pytest.mark.parametrize('kind', ['indexed', 'streamed'])
@pytest.mark.parametrize('start_step', [1, 3, 7])  # within the first epoch, at and after its end
def test_resume_gives_the_same_batches(kind, start_step):
  shard = numbered_shard(kind)
  from_zero = stream_ids(shard, steps=start_step + 3)[start_step:]
  resumed = stream_ids(shard, start_step=start_step, steps=3)
  np.testing.assert_array_equal(from_zero, resumed)


@pytest.mark.parametrize('kind', ['indexed', 'streamed'])
def test_seed_changes_the_order(kind):
  orders = {tuple(np.concatenate(stream_ids(numbered_shard(kind), seed=seed)))
            for seed in range(3)}
  assert len(orders) == 3


def test_resumed_augmentation_is_identical():
  prep = Preprocessing(image_size=12, eval_image_size=12, augment='randaugment', randaug_magnitude=15)
  images = random_image((NUM_EXAMPLES, 10, 14, 3))
  shard = in_memory_shard(images, np.zeros(NUM_EXAMPLES))

  def batches(start_step, steps):
    dataset = pipeline.train_dataset(shard, prep, BATCH, pipeline.process_key(5, 0),
                                     start_step * BATCH, shuffle_buffer=1)
    return [b['images'] for b in dataset.take(steps).as_numpy_iterator()]
  np.testing.assert_array_equal(batches(0, 5)[3:], batches(3, 2))


def test_embedded_resume_and_seeds(embedded_data_dir):
  data = DataConfig(data_dir=embedded_data_dir, shuffle_buffer=1000)
  prep = Preprocessing(image_size=24, eval_image_size=24, augment='randaugment')
  steps = 4
  run = train_iterator(data, prep, global_batch_size=16, seed=1)
  from_zero = [next(run) for _ in range(steps + 1)][steps]
  resumed = next(train_iterator(data, prep, global_batch_size=16, seed=1, start_step=steps))
  for key in ('images', 'labels'):
    np.testing.assert_array_equal(from_zero[key], resumed[key])
  other_seed = next(train_iterator(data, prep, global_batch_size=16, seed=2, start_step=steps))
  assert not np.array_equal(other_seed['images'], resumed['images'])


def test_the_global_batch_does_not_depend_on_the_process_count(make_folder):
  """Each of 2 processes reads its half of the batches 1 process reads (over an epoch boundary
  and after a resume), so a multi-host run trains on what a single host would."""
  data = DataConfig(source='folder', train_folder=make_folder('train', (8, 8, 8)))  # 24 images

  def ids(process_index, process_count, start_step=0, steps=4):
    run = train_iterator(data, PREP, global_batch_size=2 * BATCH, seed=0, start_step=start_step,
                         process_index=process_index, process_count=process_count)
    return [list(example_ids(next(run)['images'])) for _ in range(steps)]
  whole = ids(0, 1)
  halves = [ids(p, 2) for p in range(2)]
  assert [a + b for a, b in zip(*halves)] == whole
  assert sorted(sum(whole[:3], [])) == list(range(24))  # the first epoch: a permutation
  assert ids(1, 2, start_step=2, steps=2) == halves[1][2:]


def test_eval_exactly_once_over_processes(make_folder):
  data = DataConfig(source='folder', eval_folder=make_folder('eval', (8, 8, 7)))  # 23 images
  counts = collections.Counter()
  num_batches = []
  for process_index in range(3):
    batches = list(eval_iterator(data, PREP, global_batch_size=3 * BATCH,
                                 process_index=process_index, process_count=3))
    num_batches.append(len(batches))
    for batch in batches:
      real = batch['mask'] == 1
      ids = example_ids(batch['images'][real])
      np.testing.assert_array_equal(batch['labels'][real], np.where(ids < 8, 0, (ids - 8) // 8 + 1))
      counts.update(ids)
  assert num_batches == [2, 2, 2]  # shards of 8, 8 and 7 in batches of 4
  assert counts == collections.Counter(range(23))


def test_embedded_eval_exactly_once_over_processes(embedded_data_dir):
  data = DataConfig(data_dir=embedded_data_dir)
  prep = Preprocessing(image_size=28, eval_image_size=28, crop_mode='squash')

  def examples(process_count):
    seen = collections.Counter()
    lengths = set()
    for process_index in range(process_count):
      batches = list(eval_iterator(data, prep, 600 * process_count, process_index, process_count))
      lengths.add(len(batches))
      for batch in batches:
        real = batch['mask'] == 1
        seen.update(zip(batch['labels'][real], np.round(batch['images'][real].sum((1, 2, 3)), 2)))
    return seen, lengths
  whole, _ = examples(1)
  sharded, lengths = examples(3)
  assert sum(whole.values()) == dataset_info(data).num_eval_examples == 10000
  assert sharded == whole and lengths == {6}  # shards 3334, 3333, 3333 in batches of 600


def test_batch_size_must_divide():
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    pipeline.local_batch_size(16, 3)
