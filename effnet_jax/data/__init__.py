"""Input pipeline: data sources, tf.data preprocessing and augmentation, batch mixing.

``mix`` (JAX, runs on the device) is imported on its own: ``from effnet_jax.data import mix``.
"""
from effnet_jax.data.config import DataConfig, DataError, DatasetInfo, Preprocessing
from effnet_jax.data.pipeline import dataset_info, eval_iterator, train_iterator

__all__ = ['DataConfig', 'DataError', 'DatasetInfo', 'Preprocessing', 'dataset_info',
           'eval_iterator', 'train_iterator']
