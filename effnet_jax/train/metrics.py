"""Run metrics: ``metrics.jsonl``, TensorBoard scalars and a progress bar (process 0 only).

Files go through ``tf.io.gfile``, so a workdir may be a local path or a bucket (``gs://...``, the
shared storage of a multi-host run).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from typing import Any, TextIO

_log = logging.getLogger(__name__)


class MetricsError(RuntimeError):
  """Metrics could not be written (a full disk, a quota, a lost mount)."""


class MetricWriter:
  """Writes scalars to ``workdir/metrics.jsonl`` (one JSON object per line) and TensorBoard.

  Every record has ``step``; scalar names look like ``train/loss``, ``eval/top1``. Event
  records (e.g. a compilation) carry ``event`` instead of a step where they have none.

  A failed write (full disk, ...) raises :class:`MetricsError`. A record torn by an earlier
  failure or a kill stays on a line of its own: the next record starts on a new line, and
  :func:`read_metrics` skips the torn one.
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    import tensorflow as tf  # gfile and the summary writer; TF never sees an accelerator here
    self._workdir = workdir
    self.path = os.path.join(workdir, 'metrics.jsonl')
    with _reporting_errors(workdir):
      tf.io.gfile.makedirs(workdir)
      torn = _ends_torn(self.path)
      self._jsonl = tf.io.gfile.GFile(self.path, 'a')
      if torn:
        self._jsonl.write('\n')
      if tensorboard:
        self._tb = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int | None, scalars: dict[str, Any], **fields) -> None:
    if not self.enabled:
      return
    record = {'step': step} if step is not None else {}
    record.update(fields)
    record.update({k: _to_python(v) for k, v in scalars.items()})
    with _reporting_errors(self._workdir):
      self._jsonl.write(json.dumps(record) + '\n')
      self._jsonl.flush()
      if self._tb is not None and step is not None:
        import tensorflow as tf
        with self._tb.as_default(step=step):
          for k, v in scalars.items():
            v = _to_python(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
              tf.summary.scalar(k, v)
        self._tb.flush()

  def close(self) -> None:
    if not self.enabled:
      return
    with _reporting_errors(self._workdir):
      if self._jsonl:
        self._jsonl.close()
      if self._tb is not None:
        self._tb.close()


@contextlib.contextmanager
def _reporting_errors(workdir: str):
  """Turns an I/O error of writing metrics into one MetricsError naming the directory."""
  import tensorflow as tf
  try:
    yield
  except (OSError, tf.errors.OpError) as error:
    reason = getattr(error, 'message', None) or getattr(error, 'strerror', None) or str(error)
    raise MetricsError(f'could not write the metrics of {workdir} (metrics.jsonl, '
                       f'TensorBoard): {reason}') from error


def _ends_torn(path: str) -> bool:
  """Whether the file at ``path`` ends inside a line (a write cut short)."""
  import tensorflow as tf
  if not tf.io.gfile.exists(path):
    return False
  size = tf.io.gfile.stat(path).length
  if not size:
    return False
  with tf.io.gfile.GFile(path, 'rb') as f:
    f.seek(size - 1)
    return f.read(1) != b'\n'


def _to_python(value):
  if hasattr(value, 'item'):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/Inf
  return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of ``workdir/metrics.jsonl``; a line that is not a JSON object (a write cut
  short by a full disk or a kill) is skipped with a warning naming it."""
  import tensorflow as tf
  path = os.path.join(workdir, 'metrics.jsonl')
  records, torn = [], []
  with tf.io.gfile.GFile(path) as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except ValueError:
        record = None
      if isinstance(record, dict):
        records.append(record)
      else:
        torn.append(number)
  if torn:
    _log.warning('%s: skipped %d line(s) that are not complete records (a write cut short?): '
                 'line %s', path, len(torn), ', '.join(map(str, torn[:10])))
  return records


def format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m:02d}:{s:02d}'


class ProgressBar:
  """One status line: step, percent, images/s, ETA, loss and learning rate.

  On a terminal it redraws in place; otherwise (logs, CI) it prints a line at most every
  ``min_interval`` seconds.
  """

  def __init__(self, total_steps: int, batch_size: int, start_step: int = 0,
               enabled: bool = True, stream: TextIO | None = None, min_interval: float = 10.0):
    self.total, self.batch_size = total_steps, batch_size
    self.enabled = enabled
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.min_interval = 0.2 if self.tty else min_interval
    self._start_step = start_step
    self._start_time = time.time()
    self._last_print = 0.0

  def restart_clock(self, step: int) -> None:
    """Excludes compilation and evaluation pauses from the throughput estimate."""
    self._start_step, self._start_time = step, time.time()

  def update(self, step: int, loss: float | None = None, learning_rate: float | None = None,
             force: bool = False) -> None:
    if not self.enabled:
      return
    now = time.time()
    if not force and now - self._last_print < self.min_interval:
      return
    self._last_print = now
    done = step - self._start_step
    elapsed = now - self._start_time
    if elapsed > 0 and done > 1:
      self._rate = done * self.batch_size / elapsed
    rate = getattr(self, '_rate', 0.0)  # just after a pause: the rate measured before it
    eta = (self.total - step) * self.batch_size / rate if rate else float('nan')
    width = 24
    filled = int(width * step / max(self.total, 1))
    parts = [f'[{"#" * filled}{"." * (width - filled)}] {step}/{self.total}',
             f'{100 * step / max(self.total, 1):5.1f}%', f'{rate:,.0f} img/s',
             f'ETA {format_duration(eta) if math.isfinite(eta) else "--:--"}']
    if loss is not None:
      parts.append(f'loss {loss:.4f}')
    if learning_rate is not None:
      parts.append(f'lr {learning_rate:.3g}')
    line = '  '.join(parts)
    if self.tty:
      self.stream.write('\r' + line + '\x1b[K')
    else:
      self.stream.write(line + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self.enabled and self.tty:
      self.stream.write('\n')
      self.stream.flush()


def eval_scores(workdir: str, metric: str = 'eval/top1') -> dict[int, float]:
  """``{step: metric}`` of every evaluation in ``workdir/metrics.jsonl`` (a step's last record
  wins: a resumed run may evaluate a step again); {} before the first one."""
  import tensorflow as tf
  if not tf.io.gfile.exists(os.path.join(workdir, 'metrics.jsonl')):
    return {}
  return {int(r['step']): float(r[metric]) for r in read_metrics(workdir)
          if r.get('step') is not None and isinstance(r.get(metric), (int, float))}
