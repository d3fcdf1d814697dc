"""TFDS data sets through the real pipeline with tfds.testing.mock_data, and TFDS errors."""
import io
import tarfile

import chex
import numpy as np
import pytest

from data_helpers import encode_image, random_image
from effnet_jax.data import (DataConfig, DataError, Preprocessing, dataset_info, eval_iterator,
                             train_iterator)

NUM_EXAMPLES = 12
PREP = Preprocessing(image_size=32, eval_image_size=24, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.fixture
def mocked_tfds(mock_tfds):
  """Mocked fashion_mnist (fixed-size PNG) and tf_flowers (variable-size JPEG)."""
  with mock_tfds({'fashion_mnist': ('train', 'test'), 'tf_flowers': ('train',)},
                 NUM_EXAMPLES) as data_dir:
    yield data_dir


@pytest.mark.parametrize('name, eval_split, num_classes', [
    ('fashion_mnist', 'test', 10), ('tf_flowers', 'train', 5)])
@pytest.mark.parametrize('cache', [False, True])
def test_train_and_eval_batches(mocked_tfds, name, eval_split, num_classes, cache):
  data = DataConfig(source='tfds', name=name, data_dir=mocked_tfds, eval_split=eval_split,
                    cache=cache)
  assert dataset_info(data).num_classes == num_classes
  train = next(train_iterator(data, PREP, global_batch_size=8, seed=0))
  chex.assert_shape([train['images'], train['labels']], [(8, 32, 32, 3), (8,)])
  chex.assert_type([train['images'], train['labels']], [np.float32, np.int32])
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
                                      r"tfds.builder\('mnist', data_dir="):
    dataset_info(DataConfig(source='tfds', name='mnist', data_dir=str(tmp_path)))


def test_imagenet_with_empty_manual_dir(tmp_path):
  manual_dir = tmp_path / 'manual'
  manual_dir.mkdir()
  with pytest.raises(DataError, match='imagenet2012.*preparing it from manual_dir'):
    dataset_info(DataConfig(source='tfds', name='imagenet2012', data_dir=str(tmp_path / 'tfds'),
                            manual_dir=str(manual_dir), eval_split='validation'))


def add_to_tar(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def jpeg_bytes(seed):
  return encode_image(random_image((40, 50, 3), seed), 'JPEG')


def test_imagenet_prepared_from_manual_dir(tmp_path):
  """imagenet2012's own TFDS builder on tiny tar files of the real layout (no network)."""
  manual_dir = tmp_path / 'manual'
  manual_dir.mkdir()
  with tarfile.open(manual_dir / 'ILSVRC2012_img_train.tar', 'w') as train_tar:
    for wnid in ('n01440764', 'n01443537'):  # classes 0 and 1
      class_tar = io.BytesIO()
      with tarfile.open(fileobj=class_tar, mode='w') as inner:
        for index in range(2):
          add_to_tar(inner, f'{wnid}_{index}.JPEG', jpeg_bytes(index))
      add_to_tar(train_tar, f'{wnid}.tar', class_tar.getvalue())
  with tarfile.open(manual_dir / 'ILSVRC2012_img_val.tar', 'w') as val_tar:
    for index in range(1, 4):
      add_to_tar(val_tar, f'ILSVRC2012_val_{index:08d}.JPEG', jpeg_bytes(10 + index))
  data = DataConfig(source='tfds', name='imagenet2012', data_dir=str(tmp_path / 'tfds'),
                    manual_dir=str(manual_dir), eval_split='validation')
  info = dataset_info(data)
  assert (info.num_classes, info.num_train_examples, info.num_eval_examples) == (1000, 4, 3)
  train = next(train_iterator(data, PREP, global_batch_size=4, seed=0))
  assert sorted(train['labels']) == [0, 0, 1, 1]
  batches = list(eval_iterator(data, PREP, global_batch_size=2))
  assert [list(b['mask']) for b in batches] == [[1, 1], [1, 0]]


@pytest.mark.parametrize('cache', [False, True])
def test_image_over_the_pixel_limit_stops_with_the_limit(mocked_tfds, cache):
  """tf_flowers' mock JPEGs have sides of 5 to 49 pixels: at least 25 pixels each. Encoded
  images (streamed, or held in memory encoded) are checked before decoding."""
  data = DataConfig(source='tfds', name='tf_flowers', data_dir=mocked_tfds, eval_split='train',
                    cache=cache, max_image_pixels=24)
  message = r'an image of \d+x\d+ pixels, more than max_image_pixels=24: raise data.max_image'
  with pytest.raises(DataError, match=message):
    next(train_iterator(data, PREP, global_batch_size=8, seed=0))
  with pytest.raises(DataError, match=message):
    list(eval_iterator(data, PREP, global_batch_size=8))


def test_tfds_own_deprecation_warning_is_not_in_the_log(caplog):
  """TFDS's batch decoder trips TFDS's own FeatureConnector.dtype deprecation warning on every
  run; loading the data package drops that one message from the absl log and nothing else."""
  import logging

  from effnet_jax.data import tfds_data  # noqa: F401  (installs the filter)
  with caplog.at_level(logging.WARNING):
    logging.getLogger('absl').warning('`FeatureConnector.dtype` is deprecated. Please change')
    logging.getLogger('absl').warning('`FeatureConnector.shape` is deprecated.')
  assert [r.getMessage() for r in caplog.records] == ['`FeatureConnector.shape` is deprecated.']
