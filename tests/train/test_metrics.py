"""Metric records (JSONL + TensorBoard), the progress line and durations."""
import io
import os

import numpy as np

from effnet_jax.train.metrics import MetricWriter, ProgressBar, format_duration, read_metrics


def test_jsonl_and_tensorboard_records(tmp_path):
  writer = MetricWriter(str(tmp_path), tensorboard=True)
  writer.write(10, {'train/loss': np.float32(1.5), 'train/top1': 0.25})
  writer.write(None, {}, event='compile', fn='train_step', image_size=16, seconds=1.0)
  writer.close()
  records = read_metrics(str(tmp_path))
  assert records[0] == {'step': 10, 'train/loss': 1.5, 'train/top1': 0.25}
  assert records[1]['event'] == 'compile' and 'step' not in records[1]
  event_files = os.listdir(tmp_path / 'tensorboard')
  assert event_files and all(f.startswith('events.out.tfevents') for f in event_files)


def test_disabled_writer_writes_nothing(tmp_path):
  writer = MetricWriter(str(tmp_path), enabled=False)
  writer.write(1, {'train/loss': 1.0})
  writer.close()
  assert not os.path.exists(tmp_path / 'metrics.jsonl')


def test_progress_line_has_rate_and_eta(monkeypatch):
  clock = iter([0.0, 10.0, 10.0, 20.0])
  monkeypatch.setattr('effnet_jax.train.metrics.time.time', lambda: next(clock))
  out = io.StringIO()
  bar = ProgressBar(100, 32, stream=out)
  bar.update(50, loss=0.5, learning_rate=0.1, force=True)  # 50 steps * 32 images in 10 s
  line = out.getvalue().strip()
  assert '50/100' in line and '160 img/s' in line and 'ETA 00:10' in line
  assert 'loss 0.5000' in line and 'lr 0.1' in line
  bar.restart_clock(50)  # an evaluation pause: the last rate stays on show
  bar.update(50, force=True)
  assert '160 img/s' in out.getvalue().strip().splitlines()[-1]


def test_format_duration():
  assert format_duration(5) == '00:05' and format_duration(3725) == '1:02:05'
