"""TFDS data sets through the real pipeline with tfds.testing.mock_data, and TFDS errors."""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming

from effnet_jax.data import (DataConfig, DataError, Preprocessing, dataset_info, eval_iterator,
                             train_iterator)

NUM_EXAMPLES = 12
PREP = Preprocessing(image_size=32, eval_size=24, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def write_metadata(data_dir, name, splits):
  """dataset_info.json of a data set whose splits hold NUM_EXAMPLES examples each."""
  builder = tfds.builder(name, data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[NUM_EXAMPLES], num_bytes=0,
                          filename_template=naming.ShardedFileTemplate(
                              data_dir=builder.data_dir, dataset_name=name, split=split,
                              filetype_suffix='tfrecord'))
      for split in splits]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


@pytest.fixture
def mocked_tfds(tmp_path):
  """Mocked fashion_mnist (fixed-size PNG) and tf_flowers (variable-size JPEG)."""
  write_metadata(tmp_path, 'fashion_mnist', ('train', 'test'))
  write_metadata(tmp_path, 'tf_flowers', ('train',))
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, data_dir=str(tmp_path),
                              policy=tfds.testing.MockPolicy.USE_FILES):
    yield str(tmp_path)


@pytest.mark.parametrize('name, eval_split, num_classes', [
    ('fashion_mnist', 'test', 10), ('tf_flowers', 'train', 5)])
@pytest.mark.parametrize('cache', [False, True])
def test_train_and_eval_batches(mocked_tfds, name, eval_split, num_classes, cache):
  data = DataConfig(source='tfds', name=name, data_dir=mocked_tfds, eval_split=eval_split,
                    cache=cache)
  assert dataset_info(data).num_classes == num_classes
  train = next(train_iterator(data, PREP, global_batch_size=8, seed=0))
  assert train['images'].shape == (8, 32, 32, 3) and train['images'].dtype == np.float32
  assert train['labels'].dtype == np.int32 and train['labels'].shape == (8,)
  assert np.all((train['labels'] >= 0) & (train['labels'] < num_classes))
  assert train['images'].min() >= -1.0 and train['images'].max() <= 1.0  # (x/255 - .5)/.5
  batches = list(eval_iterator(data, PREP, global_batch_size=8))
  assert [b['images'].shape for b in batches] == [(8, 24, 24, 3)] * 2
  assert sum(b['mask'].sum() for b in batches) == NUM_EXAMPLES
  assert np.all(batches[-1]['images'][batches[-1]['mask'] == 0] == 0)


def test_unknown_data_set(tmp_path):
  with pytest.raises(DataError, match="no data set named 'no_such_data_set'"):
    dataset_info(DataConfig(source='tfds', name='no_such_data_set', data_dir=str(tmp_path)))


def test_unknown_split(mocked_tfds):
  with pytest.raises(DataError, match="no split 'validation'"):
    dataset_info(DataConfig(source='tfds', name='fashion_mnist', data_dir=mocked_tfds,
                            eval_split='validation'))


def test_unprepared_data_set_is_not_downloaded(tmp_path):
  with pytest.raises(DataError, match=f"'mnist' is not prepared in data_dir '{tmp_path}'.*"
                                      'tfds build mnist'):
    dataset_info(DataConfig(source='tfds', name='mnist', data_dir=str(tmp_path)))


def test_imagenet_with_empty_manual_dir(tmp_path):
  manual_dir = tmp_path / 'manual'
  manual_dir.mkdir()
  with pytest.raises(DataError, match='imagenet2012.*preparing it from manual_dir'):
    dataset_info(DataConfig(source='tfds', name='imagenet2012', data_dir=str(tmp_path / 'tfds'),
                            manual_dir=str(manual_dir), eval_split='validation'))
