"""Image folders: listing, labels, formats and unreadable files."""
import numpy as np
import pytest

from data_helpers import example_ids, random_image, write_image
from effnet_jax.data import (DataConfig, DataError, Preprocessing, dataset_info, eval_iterator,
                             train_iterator)

PREP = Preprocessing(image_size=16, eval_image_size=16, train_crop='none', flip=False,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def folder_config(train, eval_=None, **kwargs):
  return DataConfig(source='folder', train_folder=train, eval_folder=eval_, **kwargs)


def test_classes_labels_and_formats(make_folder, tmp_path):
  root = make_folder('train', (2, 3, 1))
  write_image(f'{root}/bee/photo.jpg', random_image((30, 40, 3)), 'JPEG')
  write_image(f'{root}/cat/grey.jpg', random_image((30, 40, 1)), 'JPEG')
  (tmp_path / 'train' / 'ant' / 'notes.txt').write_text('not an image, not listed')
  info = dataset_info(folder_config(root))
  assert info.class_names == ('ant', 'bee', 'cat') and info.num_train_examples == 8
  batches = list(eval_iterator(folder_config(None, root), PREP, global_batch_size=8))
  assert len(batches) == 1 and batches[0]['mask'].sum() == 8
  np.testing.assert_array_equal(batches[0]['labels'], [0, 0, 1, 1, 1, 1, 2, 2])
  assert batches[0]['images'].shape == (8, 16, 16, 3)
  pngs = [0, 1, 2, 3, 4, 6]  # bee/photo.jpg and cat/grey.jpg sort after the PNGs
  assert list(example_ids(batches[0]['images'][pngs])) == [0, 1, 2, 3, 4, 5]
  inception = Preprocessing(image_size=16, eval_image_size=16)
  train = next(train_iterator(folder_config(root), inception, global_batch_size=8, seed=0))
  assert train['images'].shape == (8, 16, 16, 3) and np.isfinite(train['images']).all()


@pytest.mark.parametrize('folder, message', [
    ('missing', 'is not a directory'), ('empty', 'no class sub-folders'),
    ('no_images', 'holds no image files')])
def test_bad_folders(tmp_path, folder, message):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'no_images' / 'ant').mkdir(parents=True)
  with pytest.raises(DataError, match=message):
    dataset_info(folder_config(str(tmp_path / folder)))


def test_eval_class_unknown_to_train(make_folder):
  with pytest.raises(DataError, match="sub-folder 'eel' that the train folder lacks"):
    dataset_info(folder_config(make_folder('train', (1, 1)),
                               make_folder('eval', (1, 1), ('ant', 'eel'))))


@pytest.fixture
def folder_with_corrupt_file(make_folder):
  root = make_folder('train', (3, 3, 3))
  with open(f'{root}/bee/broken.jpg', 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated JPEG')
  return root


def test_corrupt_file_is_named(folder_with_corrupt_file):
  data = folder_config(folder_with_corrupt_file, folder_with_corrupt_file)
  train = train_iterator(data, PREP, global_batch_size=4, seed=0)
  with pytest.raises(DataError, match='bee/broken.jpg'):
    for _ in range(3):  # the first epoch: 10 files
      next(train)
  with pytest.raises(DataError, match='bee/broken.jpg'):
    list(eval_iterator(data, PREP, global_batch_size=4))


def test_corrupt_file_is_skipped_and_counted(folder_with_corrupt_file):
  data = folder_config(folder_with_corrupt_file, folder_with_corrupt_file, on_bad_image='skip')
  assert dataset_info(data).num_train_examples == 10  # files found, the corrupt one included
  train = train_iterator(data, PREP, global_batch_size=4, seed=0)
  assert len(train.skipped_images) == 1 and train.skipped_images[0].endswith('bee/broken.jpg')
  seen = np.concatenate([next(train)['images'] for _ in range(9)])  # 4 epochs of 9 images
  assert sorted(set(example_ids(seen))) == list(range(9))
  batches = list(eval_iterator(data, PREP, global_batch_size=4))
  assert len(batches) == 3 and sum(b['mask'].sum() for b in batches) == 9


@pytest.fixture
def folder_with_large_image(make_folder):
  """Nine images of at most 24x26 pixels and bee/large.png of 40x40 (1,600 pixels)."""
  root = make_folder('train', (3, 3, 3))
  write_image(f'{root}/bee/large.png', random_image((40, 40, 3)), 'PNG')
  return root


def test_image_over_the_pixel_limit_is_named(folder_with_large_image):
  data = folder_config(folder_with_large_image, folder_with_large_image, max_image_pixels=1000)
  message = (r"bee/large.png'\], among them an image of 40x40 pixels, "
             'more than max_image_pixels=1000')
  with pytest.raises(DataError, match=message):
    list(eval_iterator(data, PREP, global_batch_size=4))
  train = train_iterator(data, PREP, global_batch_size=4, seed=0)
  with pytest.raises(DataError, match=message):
    for _ in range(3):  # the first epoch: 10 files
      next(train)


def test_image_over_the_pixel_limit_is_skipped_and_counted(folder_with_large_image, caplog):
  data = folder_config(folder_with_large_image, folder_with_large_image, on_bad_image='skip',
                       max_image_pixels=1000)
  batches = list(eval_iterator(data, PREP, global_batch_size=4))
  assert len(batches) == 3 and sum(b['mask'].sum() for b in batches) == 9
  assert 'Skipping 1 unreadable image files (corrupt, or more than max_image_pixels=1000' in (
      caplog.text)
  train = train_iterator(data, PREP, global_batch_size=4, seed=0)
  assert len(train.skipped_images) == 1 and train.skipped_images[0].endswith('bee/large.png')
  seen = np.concatenate([next(train)['images'] for _ in range(3)])
  assert sorted(set(example_ids(seen))) == list(range(9))
