"""Metric records (JSONL + TensorBoard), the progress line and durations."""
import io
import os

import numpy as np

import pytest

from effnet_jax.train.metrics import (MetricsError, MetricWriter, ProgressBar, eval_scores,
                                      format_duration, read_metrics)


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


def test_a_torn_line_is_skipped_with_a_warning_and_writing_goes_on(tmp_path, caplog):
  """A record cut short (a full disk, a kill): readers skip it, the next writer starts a new
  line, so one torn write never spoils the records after it."""
  writer = MetricWriter(str(tmp_path), tensorboard=False)
  writer.write(2, {'eval/top1': 0.5})
  writer.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 4, "eval/to')
  with caplog.at_level('WARNING'):
    assert read_metrics(str(tmp_path)) == [{'step': 2, 'eval/top1': 0.5}]
  assert 'skipped 1 line(s) that are not complete records' in caplog.text and 'line 2' in (
      caplog.text)
  assert eval_scores(str(tmp_path)) == {2: 0.5}  # what evaluate --best ranks
  writer = MetricWriter(str(tmp_path), tensorboard=False)  # a resumed run
  writer.write(4, {'eval/top1': 0.75})
  writer.close()
  assert eval_scores(str(tmp_path)) == {2: 0.5, 4: 0.75}
  assert open(tmp_path / 'metrics.jsonl').read().splitlines()[1] == '{"step": 4, "eval/to'


def test_a_write_error_is_one_metrics_error(tmp_path):
  os.symlink('/dev/full', tmp_path / 'metrics.jsonl')  # every write: ENOSPC
  writer = MetricWriter(str(tmp_path), tensorboard=False)
  with pytest.raises(MetricsError, match=r'could not write the metrics of .*: .*No space left on '
                                         r'device'):
    writer.write(1, {'train/loss': 1.0})


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
