"""Image folders: ``root/<class name>/**/<image file>``; class index = rank of the sorted name."""
from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf

from effnet_jax.data import preprocess
from effnet_jax.data.config import DataError
from effnet_jax.data.shards import IndexedShard

# The files listed: the formats TensorFlow decodes, then common ones Pillow does (preprocess.py).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.gif', '.bmp', '.webp', '.jxl',
                    '.tif', '.tiff', '.ppm', '.pgm', '.pbm', '.pnm', '.tga', '.jp2', '.j2k')
_SHOWN_NAMES = 5  # unreadable files named in a log line
_log = logging.getLogger(__name__)


def _check_folder(folder: str, role: str) -> str:
  if not tf.io.gfile.isdir(folder):
    raise DataError(f'{role}_folder {folder!r} is not a directory')
  return folder


def list_classes(folder: str) -> tuple[str, ...]:
  """The sorted names of the sub-folders."""
  names = tuple(sorted(name.rstrip('/') for name in tf.io.gfile.listdir(folder)
                       if tf.io.gfile.isdir(os.path.join(folder, name))))
  if not names:
    raise DataError(f'{folder!r} has no class sub-folders')
  return names


def _images_under(directory: str) -> list[str]:
  return sorted(os.path.join(root, name)
                for root, _, names in tf.io.gfile.walk(directory)
                for name in names if name.lower().endswith(IMAGE_EXTENSIONS))


def list_images(folder: str, class_names: tuple[str, ...]) -> tuple[list[str], list[int]]:
  """Image paths and labels, in class order then path order."""
  paths, labels = [], []
  for name in list_classes(folder):
    if name not in class_names:
      raise DataError(f'{folder!r} has a class sub-folder {name!r} that the train folder lacks')
    found = _images_under(os.path.join(folder, name))
    paths += found
    labels += [class_names.index(name)] * len(found)
  if not paths:
    raise DataError(f'{folder!r} holds no image files ({", ".join(IMAGE_EXTENSIONS)})')
  return paths, labels


def unreadable(paths: list[str], max_image_pixels: int) -> list[str]:
  """The files that cannot be read or decoded as images, or hold more than ``max_image_pixels``
  pixels (those are not decoded); one tf.data pass, in parallel."""
  def decoded_index(index, path):
    encoded = preprocess.check_pixel_limit(tf.io.read_file(path), max_image_pixels)
    return index, tf.shape(preprocess.decode_crop(encoded))
  readable = (tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).enumerate()
              .map(decoded_index, num_parallel_calls=tf.data.AUTOTUNE)
              .ignore_errors())
  ok = {int(index) for index, _ in readable.as_numpy_iterator()}
  return [path for index, path in enumerate(paths) if index not in ok]


class FolderSplit:
  """The images of one folder; process p takes every process_count-th file from the p-th."""
  random_access = True

  def __init__(self, folder: str, class_names: tuple[str, ...], on_bad_image: str,
               max_image_pixels: int):
    self._paths, self._labels = list_images(folder, class_names)
    self._on_bad_image = on_bad_image
    self._max_image_pixels = max_image_pixels
    self.num_examples = len(self._paths)

  def shard_sizes(self, process_count: int) -> list[int]:
    return [len(range(p, self.num_examples, process_count)) for p in range(process_count)]

  def shard(self, process_index: int, process_count: int) -> IndexedShard:
    paths = self._paths[process_index::process_count]
    labels = self._labels[process_index::process_count]
    limit = self._max_image_pixels
    skipped = tuple(unreadable(paths, limit)) if self._on_bad_image == 'skip' else ()
    if skipped:
      _log.warning('Skipping %d unreadable image files (corrupt, or more than max_image_pixels=%d '
                   'pixels), e.g. %s', len(skipped), limit, list(skipped[:_SHOWN_NAMES]))
      bad = set(skipped)
      labels = [label for path, label in zip(paths, labels) if path not in bad]
      paths = [path for path in paths if path not in bad]
    path_table = tf.constant(list(paths), tf.string)
    label_table = tf.constant(list(labels), tf.int64)
    return IndexedShard(
        num_examples=len(paths),
        fetch=lambda index: {'image': tf.io.read_file(tf.gather(path_table, index)),
                             'label': tf.gather(label_table, index)},
        find_unreadable=lambda indices: unreadable([paths[i] for i in np.asarray(indices)],
                                                   limit),
        skipped=skipped)


def folder_splits(train_folder: str | None, eval_folder: str | None, on_bad_image: str,
                  max_image_pixels: int
                  ) -> tuple[tuple[str, ...], FolderSplit | None, FolderSplit | None]:
  """(class names, train split, eval split); a split is None where its folder is not given.

  The class names come from the train folder (from the eval folder where only it is given)."""
  given = {role: _check_folder(folder, role)
           for role, folder in (('train', train_folder), ('eval', eval_folder)) if folder}
  if not given:
    raise DataError("source='folder' needs train_folder and/or eval_folder: directories with "
                    'one sub-folder per class')
  class_names = list_classes(given.get('train') or given['eval'])
  train, eval_ = (FolderSplit(given[role], class_names, on_bad_image, max_image_pixels)
                  if role in given else None for role in ('train', 'eval'))
  return class_names, train, eval_
