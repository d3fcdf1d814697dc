"""Run metrics: ``metrics.jsonl``, TensorBoard scalars and a progress bar (process 0 only).

Files go through ``tf.io.gfile``, so a workdir may be a local path or a bucket (``gs://...``, the
shared storage of a multi-host run).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, TextIO


class MetricWriter:
  """Writes scalars to ``workdir/metrics.jsonl`` (one JSON object per line) and TensorBoard.

  Every record has ``step``; scalar names look like ``train/loss``, ``eval/top1``. Event
  records (e.g. a compilation) carry ``event`` instead of a step where they have none.
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    import tensorflow as tf  # gfile and the summary writer; TF never sees an accelerator here
    tf.io.gfile.makedirs(workdir)
    self._jsonl = tf.io.gfile.GFile(os.path.join(workdir, 'metrics.jsonl'), 'a')
    if tensorboard:
      self._tb = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int | None, scalars: dict[str, Any], **fields) -> None:
    if not self.enabled:
      return
    record = {'step': step} if step is not None else {}
    record.update(fields)
    record.update({k: _to_python(v) for k, v in scalars.items()})
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
    if self._jsonl:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def _to_python(value):
  if hasattr(value, 'item'):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/Inf
  return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of ``workdir/metrics.jsonl``."""
  import tensorflow as tf
  with tf.io.gfile.GFile(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]


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
