"""Preemption: SIGTERM becomes a step at which every process checkpoints and exits.

Cloud TPU VMs (spot / preemptible), Slurm (``--signal``, ``scancel``) and Kubernetes announce an
eviction with SIGTERM some seconds ahead. The train loop polls :class:`PreemptionNotice` once per
step; when it says so, the loop saves (a collective save: every process must start it at the same
step) and exits with code 143, and the same command resumes from that checkpoint.
"""
from __future__ import annotations

import signal

import jax
from jax.experimental import multihost_utils


class PreemptionNotice:
  """SIGTERM (a preemption notice) as the step at which every process saves and exits.

  One process: a handler sets a flag the loop polls. Several (``jax.distributed``): JAX's
  preemption notifier catches SIGTERM, and the coordination service picks a step that every
  process reaches (``reached_preemption_sync_point``, polled every step) so the collective save
  starts everywhere at the same step. A Python handler would replace the notifier's, so none is
  installed then.
  """

  def __init__(self):
    self.received = False
    self._previous = None
    self._distributed = jax.distributed.is_initialized()

  def __enter__(self):
    if not self._distributed:
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
      except ValueError:  # not the main thread: no signal handling
        self._previous = None
    return self

  def _handle(self, signum, frame):
    self.received = True

  def reached(self, step: int) -> bool:
    """Whether to save and exit after ``step`` (called once per step, on every process)."""
    if self._distributed:
      self.received = multihost_utils.reached_preemption_sync_point(step)
    return self.received

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
