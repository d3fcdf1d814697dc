"""The embedded data set: Fashion-MNIST from the Debian package, served as a local TFDS data set.

``apt-get install dataset-fashion-mnist`` puts the four idx files in
``/usr/share/datasets/fashion-mnist`` (``EFFNET_JAX_FASHION_MNIST_DIR`` points elsewhere). The
builder below turns them into the TFDS data set ``fashion_mnist_local`` (same features and split
names as TFDS's own ``fashion_mnist``), prepared once into the TFDS data_dir and then read with
``as_dataset`` like any other TFDS data set. Example ``i`` of a split is image ``i`` of its idx
file (no shuffling at preparation).
"""
from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

from effnet_jax.data.config import DataError

DIR_ENV_VAR = 'EFFNET_JAX_FASHION_MNIST_DIR'
DEFAULT_DIR = '/usr/share/datasets/fashion-mnist'
CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot')
# split -> (images file, labels file)
SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
_IDX_MAGIC = {1: 2049, 3: 2051}  # number of dimensions -> magic number (unsigned byte data)


def idx_dir() -> str:
  return os.environ.get(DIR_ENV_VAR, DEFAULT_DIR)


def read_idx(path: str, ndim: int) -> np.ndarray:
  """The uint8 array of a gzipped idx file (big-endian header: magic, then one size per axis)."""
  with gzip.open(path, 'rb') as f:
    data = f.read()
  header = np.frombuffer(data, dtype='>i4', count=1 + ndim)
  if header[0] != _IDX_MAGIC[ndim]:
    raise DataError(f'{path}: not an idx file of {ndim}-d unsigned bytes (magic {header[0]})')
  shape = tuple(int(n) for n in header[1:])
  return np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim)).reshape(shape)


def check_idx_files(directory: str) -> None:
  missing = [name for files in SPLIT_FILES.values() for name in files
             if not os.path.isfile(os.path.join(directory, name))]
  if missing:
    raise DataError(
        f'The embedded Fashion-MNIST files {missing} are not in {directory!r}. Install them with '
        f'`apt-get install dataset-fashion-mnist`, point {DIR_ENV_VAR} at a directory holding '
        "them, or (with internet access) use source='tfds', name='fashion_mnist'.")


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST (70,000 28x28 grey images, 10 classes) from local idx files."""
  name = 'fashion_mnist_local'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Built from the idx files of the Debian package dataset-fashion-mnist.'}

  def __init__(self, *, idx_directory: str | None = None, **kwargs):
    self._idx_directory = idx_directory or idx_dir()
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(28, 28, 1)),
            'label': tfds.features.ClassLabel(names=CLASS_NAMES),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/zalandoresearch/fashion-mnist',
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    check_idx_files(self._idx_directory)
    return {split: self._generate_examples(*(os.path.join(self._idx_directory, f) for f in files))
            for split, files in SPLIT_FILES.items()}

  def _generate_examples(self, images_path: str, labels_path: str):
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
      raise DataError(f'{images_path} holds {len(images)} images but {labels_path} '
                      f'{len(labels)} labels')
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {'image': image[..., None], 'label': int(label)}


def fashion_mnist_builder(data_dir: str | None) -> FashionMnistLocal:
  """The prepared ``fashion_mnist_local`` builder (prepared into ``data_dir`` on first use)."""
  builder = FashionMnistLocal(data_dir=data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare()  # checks the idx files first (_split_generators)
  return builder
