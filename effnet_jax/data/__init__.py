"""Input pipeline: data sources, tf.data preprocessing and augmentation, batch mixing.

Importing the package imports no TensorFlow: the tf.data pipeline (``dataset_info``,
``eval_iterator``, ``train_iterator``) is imported on first use, so that what runs on the device
(``mix``, ``device_augment``, imported by the train step) and the config types come without it.
"""
from effnet_jax.data.config import DataConfig, DataError, DatasetInfo, Preprocessing

_PIPELINE = ('dataset_info', 'eval_iterator', 'train_iterator')  # from pipeline.py (tf.data)

__all__ = ['DataConfig', 'DataError', 'DatasetInfo', 'Preprocessing', *_PIPELINE]


def __getattr__(name: str):
  if name in _PIPELINE:
    from effnet_jax.data import pipeline
    globals().update({attr: getattr(pipeline, attr) for attr in _PIPELINE})
    return globals()[name]
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_PIPELINE))
