"""The embedded Fashion-MNIST TFDS builder on the real Debian files."""
import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from effnet_jax.data import DataConfig, DataError, dataset_info, embedded


def raw_idx(name):
  """An idx file parsed independently of the package (header: magic, sizes; then bytes)."""
  with gzip.open(os.path.join(embedded.idx_dir(), name), 'rb') as f:
    data = f.read()
  ndim = data[3]
  shape = np.frombuffer(data[4:4 + 4 * ndim], '>i4')
  return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(shape)


def test_splits_and_classes(embedded_data_dir):
  info = dataset_info(DataConfig(data_dir=embedded_data_dir))
  assert (info.num_train_examples, info.num_eval_examples, info.num_classes) == (60000, 10000, 10)
  assert info.class_names[0] == 'T-shirt/top' and info.class_names[9] == 'Ankle boot'


@pytest.mark.parametrize('split', ['train', 'test'])
def test_examples_match_idx_files(embedded_data_dir, split):
  builder = embedded.fashion_mnist_builder(embedded_data_dir)
  images_file, labels_file = embedded.SPLIT_FILES[split]
  raw_images, raw_labels = raw_idx(images_file), raw_idx(labels_file)
  examples = list(tfds.as_numpy(builder.as_dataset(split=split).take(5)))
  for index, example in enumerate(examples):
    assert example['image'].shape == (28, 28, 1) and example['image'].dtype == np.uint8
    np.testing.assert_array_equal(example['image'][..., 0], raw_images[index])
    assert example['label'] == raw_labels[index]
  assert raw_images.shape[0] == {'train': 60000, 'test': 10000}[split]
  assert 0 < raw_images[:100].mean() < 255 and set(np.unique(raw_labels)) == set(range(10))


def test_missing_idx_files_say_what_to_do(tmp_path, monkeypatch):
  monkeypatch.setenv(embedded.DIR_ENV_VAR, str(tmp_path / 'nowhere'))
  with pytest.raises(DataError, match='apt-get install dataset-fashion-mnist'):
    dataset_info(DataConfig(data_dir=str(tmp_path / 'tfds')))


def test_in_memory_shards_are_read_once_per_process(embedded_data_dir, monkeypatch):
  """The last two in-memory shards are kept: runs one after another in a process (an
  ablation's rows) read the embedded train and test splits once."""
  import collections

  from effnet_jax.data import tfds_data
  builder = embedded.fashion_mnist_builder(embedded_data_dir)
  reads = []
  read = tfds_data.TfdsSplit._read
  monkeypatch.setattr(tfds_data.TfdsSplit, '_read',
                      lambda self, subsplit: reads.append(str(subsplit)) or read(self, subsplit))
  monkeypatch.setattr(tfds_data, '_LOADED', collections.OrderedDict())
  shard = lambda split: tfds_data.TfdsSplit(builder, split, cache=True).shard(0, 1)
  first = shard('test[:64]')
  assert shard('test[:64]') is first and len(reads) == 1
  assert first.num_examples == 64
  shard('test[64:96]')
  shard('test[:64]')  # still held
  assert len(reads) == 2
  shard('test[96:128]')  # evicts test[64:96], the least recently used
  shard('test[64:96]')
  assert len(reads) == 4


def test_in_memory_shards_read_in_batches_equal_tfds_as_dataset(embedded_data_dir):
  """The in-memory read (records parsed a batch at a time, the Image feature's batch decoder)
  gives as_dataset's arrays, for whole splits, slices and each process's share."""
  from effnet_jax.data import tfds_data
  builder = embedded.fashion_mnist_builder(embedded_data_dir)
  for split, processes in (('test', 1), ('test[100:2100]', 3), ('train[:5%]', 2)):
    source = tfds_data.TfdsSplit(builder, split, cache=True)
    for p in range(processes):
      subsplit = source._subsplit(p, processes)
      batches = list(source._batched_records(subsplit).as_numpy_iterator())
      (reference,) = tfds.as_numpy(source._as_dataset(subsplit, True).batch(100_000))
      for key in ('image', 'label'):
        got = np.concatenate([b[key] for b in batches])
        assert got.dtype == reference[key].dtype and got.shape == reference[key].shape
        np.testing.assert_array_equal(got, reference[key])
  assert source._read(subsplit).num_examples == 3000 // 2
