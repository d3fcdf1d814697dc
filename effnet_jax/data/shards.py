"""The part of a split one process reads, in one of two forms the pipeline knows how to order.

* :class:`IndexedShard`: random access by local index (examples held in memory, or a list of
  files). The pipeline draws an exact permutation per epoch and can start at any step for free.
* :class:`StreamedShard`: a sequential read in a fixed order (TFDS record files). The pipeline
  shuffles it through a buffer and resumes by skipping records.

An example is a dict ``{'image': encoded bytes (tf.string) or uint8 [H, W, C], 'label': int64}``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import numpy as np
import tensorflow as tf

Example = dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class IndexedShard:
  num_examples: int
  fetch: Callable[[tf.Tensor], Example]  # local index (int64 scalar) -> example, in graph
  # Names the unreadable examples among some local indices; None where nothing can be unreadable.
  find_unreadable: Callable[[np.ndarray], list[str]] | None = None
  skipped: tuple[str, ...] = ()  # examples left out as unreadable (on_bad_image='skip')


@dataclasses.dataclass(frozen=True)
class StreamedShard:
  num_examples: int
  read: Callable[[], tf.data.Dataset]  # of examples, the same order at every call
  skipped: tuple[str, ...] = ()


Shard = IndexedShard | StreamedShard


class Split(Protocol):
  """One split of a source (train or eval), as seen by every process."""
  num_examples: int
  # Whether its shards are IndexedShards: the train stream then orders the whole split the same
  # way on every process (pipeline.py), and shard(0, 1) must be affordable on each.
  random_access: bool

  def shard_sizes(self, process_count: int) -> list[int]:
    """Examples in the shard of each process."""

  def shard(self, process_index: int, process_count: int) -> Shard:
    """The shard of one process; shards are disjoint and cover the split."""


def in_memory_shard(images: np.ndarray, labels: np.ndarray) -> IndexedShard:
  """A shard held in memory: decoded uint8 [N, H, W, C] or encoded bytes (object [N])."""
  images = tf.constant(images)
  labels = tf.constant(labels, tf.int64)
  return IndexedShard(
      num_examples=int(labels.shape[0]),
      fetch=lambda index: {'image': tf.gather(images, index), 'label': tf.gather(labels, index)})

