"""Resuming and reading a workdir when something went wrong: a checkpoint that does not restore,
a reader beside a live run, a changed run description, a failing evaluation or metrics write."""
import glob
import json
import os
import shutil
import signal
import time

import numpy as np
import pytest
from PIL import Image

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax.data import DataError
from effnet_jax.pretrained import load_pretrained, load_pretrained_with_meta
from effnet_jax.train import loop
from effnet_jax.train.loop import PREEMPTED_EXIT_CODE
from effnet_jax.train.evaluation import evaluate_sizes
from effnet_jax.train.metrics import MetricsError, eval_scores
from test_loop import run_main, saved_state, tiny_config

pytestmark = pytest.mark.xdist_group('resume')  # one worker trains the shared run

# Six steps, a checkpoint and an evaluation every two: steps 2, 4 and 6 on disk, each scored.
EVERY_TWO_STEPS = 2 * 16 / 60000  # eval_every_epochs: 2 steps of batch 16 on 60k examples


def run_config(data_dir, **changes):
  return tiny_config(**{'data.data_dir': data_dir, 'data.eval_split': 'test[:64]',
                        'num_train_steps': 6, 'checkpoint_every_steps': 2,
                        'eval_every_epochs': EVERY_TWO_STEPS, 'keep_checkpoints': 5, **changes})


@pytest.fixture(scope='module')
def trained(tmp_path_factory, embedded_data_dir):
  """(workdir, final results) of the six-step run; tests work on copies (see ``copy``)."""
  workdir = str(tmp_path_factory.mktemp('trained') / 'run')
  results = loop.train_and_evaluate(run_config(embedded_data_dir), workdir)
  assert ckpt_lib.finished_steps(os.path.join(workdir, 'checkpoints')) == [2, 4, 6]
  return workdir, results


def copy(trained, tmp_path) -> str:
  workdir = str(tmp_path / 'run')
  shutil.copytree(trained[0], workdir, symlinks=True)
  return workdir


def tear(path):
  """Cuts a file in half: a write that a crash or a full disk stopped."""
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])


def tear_all(pattern):
  for path in glob.glob(pattern):
    tear(path)


CORRUPTIONS = {
    'truncated array files': lambda step: tear_all(
        os.path.join(step, 'state', 'ocdbt.process_0', 'd', '*')),
    'torn state metadata': lambda step: tear(os.path.join(step, 'state', '_METADATA')),
    'torn run description': lambda step: tear(os.path.join(step, 'run', 'metadata')),
}


def corrupt(workdir, step, how='truncated array files'):
  CORRUPTIONS[how](os.path.join(workdir, 'checkpoints', str(step)))


def snapshot(root):
  """Every path under ``root`` with its size and modification time."""
  found = {}
  for directory, names, files in os.walk(root):
    for name in names + files:
      path = os.path.join(directory, name)
      info = os.lstat(path)
      found[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
  return found


@pytest.mark.parametrize('how', sorted(CORRUPTIONS))
def test_resume_moves_a_bad_newest_step_aside_and_uses_the_one_before(
    trained, tmp_path, embedded_data_dir, capsys, how):
  workdir = copy(trained, tmp_path)
  bad = os.path.join(workdir, 'checkpoints', '6')
  files = sorted(os.path.relpath(p, bad) for p in glob.glob(os.path.join(bad, '**'),
                                                             recursive=True))
  corrupt(workdir, 6, how)
  results = loop.train_and_evaluate(run_config(embedded_data_dir), workdir)
  out, err = capsys.readouterr()
  line, = [l for l in err.splitlines() if 'does not restore' in l]
  assert line.startswith(f'effnet_jax: checkpoint step 6 ({bad}) does not restore: ') and (
      'moved aside to 6.unrestorable-' in line)
  assert f'resumed from {os.path.join(workdir, "checkpoints")} step 4' in out
  moved, = glob.glob(os.path.join(workdir, 'checkpoints', '6.unrestorable-*'))
  assert sorted(os.path.relpath(p, moved) for p in glob.glob(os.path.join(moved, '**'),
                                                             recursive=True)) == files
  # steps 5 and 6 trained again, to the same result as the run that was never interrupted
  assert ckpt_lib.finished_steps(os.path.join(workdir, 'checkpoints')) == [2, 4, 6]
  for key in ('eval/top1', 'eval/loss', 'eval_ema/top1', 'eval_ema/loss'):
    assert results[key] == trained[1][key], key


def test_no_intact_checkpoint_is_one_clear_error(trained, tmp_path, embedded_data_dir):
  workdir = copy(trained, tmp_path)
  for step in (2, 4, 6):
    corrupt(workdir, step, 'torn run description')
  with pytest.raises(ckpt_lib.CheckpointError, match=r'no checkpoint in .* restores: checkpoint '
                     r'step 6 .*; checkpoint step 4 .*; checkpoint step 2 .*moved aside.*rerunning'
                     r' starts a fresh run'):
    loop.train_and_evaluate(run_config(embedded_data_dir), workdir)
  assert len(glob.glob(os.path.join(workdir, 'checkpoints', '*.unrestorable-*'))) == 3


def test_readers_skip_a_bad_step_and_change_nothing(trained, tmp_path, capsys):
  """evaluate (latest, --best, --step) and load_pretrained report a step that does not restore
  and use the next candidate; they rename nothing."""
  workdir = copy(trained, tmp_path)
  scores = eval_scores(workdir)
  assert sorted(scores) == [2, 4, 6]
  by_score = sorted(scores, key=lambda s: (scores[s], s), reverse=True)
  bad = {6, by_score[0]}  # the latest and the best
  for step in bad:
    corrupt(workdir, step)
  before = snapshot(workdir)

  row, = evaluate_sizes(workdir)
  assert row['step'] == max({2, 4, 6} - bad)
  _, _, meta, _ = load_pretrained_with_meta(workdir)
  assert meta['source']['step'] == row['step']
  row, = evaluate_sizes(workdir, best=True)
  assert row['step'] == next(s for s in by_score if s not in bad)  # the best that restores
  with pytest.raises(ckpt_lib.CheckpointError, match=r'checkpoint step 6 .* does not restore'):
    evaluate_sizes(workdir, step=6)
  err = capsys.readouterr().err
  assert err.count('checkpoint step 6') >= 3 and 'moved aside' not in err
  assert snapshot(workdir) == before


def test_readers_never_write_not_even_on_a_mistyped_path(trained, tmp_path):
  """An unfinished save of the live run (Orbax's temporary directory) survives every reader; a
  mistyped path is not created."""
  from effnet_jax.predict import Predictor
  from effnet_jax.pretrained import pretrained_config
  workdir = copy(trained, tmp_path)
  in_progress = os.path.join(workdir, 'checkpoints', '8.orbax-checkpoint-tmp-1796589000')
  os.makedirs(os.path.join(in_progress, 'state'))
  with open(os.path.join(in_progress, 'state', '_METADATA'), 'w') as f:
    f.write('{"being": "written"')
  before = snapshot(workdir)
  evaluate_sizes(workdir, [16])
  load_pretrained(workdir)
  pretrained_config(workdir)
  image = str(tmp_path / 'image.png')
  Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
  next(Predictor(workdir).predict_files([image]))
  assert os.path.isdir(in_progress) and snapshot(workdir) == before

  typo = str(tmp_path / 'rnu')
  for read in (evaluate_sizes, load_pretrained, pretrained_config):
    with pytest.raises(FileNotFoundError):
      read(typo)
  assert not os.path.exists(typo)


@pytest.mark.long
def test_a_reader_works_while_the_run_saves_every_step(tmp_path, embedded_data_dir):
  """load_pretrained of a workdir, in a loop, while the run saves asynchronously every step
  (and removes older steps): every read succeeds, and the run, stopped by SIGTERM once the
  reader has read several of its steps, saves its last step and ends as a preempted run."""
  workdir = str(tmp_path / 'live')
  proc = run_main(workdir, embedded_data_dir,
                  ['--config.num_train_steps=100000', '--config.checkpoint_every_steps=1',
                   '--config.async_checkpoints=True', '--config.keep_checkpoints=2'], wait=False)
  checkpoints = os.path.join(workdir, 'checkpoints')
  reads, steps, start = 0, set(), time.time()
  while proc.poll() is None and (reads < 3 or len(steps) < 3):
    assert time.time() - start < 300, 'timed out'
    if not os.path.isdir(checkpoints) or not ckpt_lib.finished_steps(checkpoints):
      time.sleep(0.05)
      continue
    _, _, meta, _ = load_pretrained_with_meta(workdir)
    reads += 1
    steps.add(meta['source']['step'])
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == PREEMPTED_EXIT_CODE, out
  last = ckpt_lib.finished_steps(checkpoints)[-1]
  assert f'SIGTERM: saved step {last}' in out and last > max(steps), (out, steps)
  assert load_pretrained_with_meta(workdir)[2]['source']['step'] == last


def test_a_failing_evaluation_loses_no_training(tmp_path, embedded_data_dir, monkeypatch):
  """The final step is saved before the final evaluation, which here fails."""
  def unreadable(*args, **kwargs):
    raise DataError("unreadable image files ['eval/cat/7.png']")
  monkeypatch.setattr(loop, 'evaluate', unreadable)
  workdir = str(tmp_path)
  with pytest.raises(DataError, match='unreadable image files'):
    loop.train_and_evaluate(tiny_config(**{'data.data_dir': embedded_data_dir,
                                           'data.eval_split': 'test[:32]',
                                           'num_train_steps': 4}), workdir)
  assert ckpt_lib.finished_steps(os.path.join(workdir, 'checkpoints')) == [3, 4]
  assert int(saved_state(workdir, 4)['step']) == 4


def image_folder(root, class_names, per_class=4, bad=()):
  """Tiny PNGs, one sub-folder per class; ``bad`` names files written as garbage."""
  rng = np.random.default_rng(len(str(root)))
  for name in class_names:
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      path = os.path.join(root, name, f'{i}.png')
      if f'{name}/{i}.png' in bad:
        with open(path, 'wb') as f:
          f.write(b'\x89PNG not really')
      else:
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(path)
  return str(root)


def folder_config(train, eval_=None, **changes):
  return tiny_config(**{'data.source': 'folder', 'data.train_folder': train,
                        'data.eval_folder': eval_, 'num_train_steps': 1, **changes})


def test_the_eval_data_is_checked_before_the_first_step(tmp_path):
  train = image_folder(tmp_path / 'train', ('ant', 'bee'))
  for eval_, message in ((None, r'no eval examples: data.eval_folder is not set'),
                         (image_folder(tmp_path / 'eval', ('ant', 'bee'), bad=('ant/0.png',)),
                          r"unreadable image files \[.*ant/0.png'\]")):
    workdir = tmp_path / f'run_{bool(eval_)}'
    with pytest.raises(DataError, match=message):
      loop.train_and_evaluate(folder_config(train, eval_), str(workdir))
    assert not os.path.exists(workdir)  # not one step trained (nor a directory made)


def test_resume_refuses_another_data_set_unless_allowed(tmp_path, capsys):
  """Same shapes, other data: another train folder whose classes differ in one name."""
  first = (image_folder(tmp_path / 'a' / 'train', ('ant', 'bee')),
           image_folder(tmp_path / 'a' / 'eval', ('ant', 'bee')))
  other = (image_folder(tmp_path / 'b' / 'train', ('ant', 'cow')),
           image_folder(tmp_path / 'b' / 'eval', ('ant', 'cow')))
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(folder_config(*first), workdir)
  longer = folder_config(*other, num_train_steps=2)
  with pytest.raises(ckpt_lib.CheckpointMismatch) as error:
    loop.train_and_evaluate(longer, workdir)
  message = str(error.value)
  for key in ('class_names', 'data.eval_folder', 'data.train_folder', 'num_train_steps'):
    assert f'{key}: ' in message, key
  assert "['ant', 'bee'] -> ['ant', 'cow']" in message and message.endswith(
      '--allow_changes=class_names,data.eval_folder,data.train_folder,num_train_steps')
  assert ckpt_lib.finished_steps(os.path.join(workdir, 'checkpoints')) == [1]
  capsys.readouterr()
  results = loop.train_and_evaluate(longer, workdir,
                                    allow_changes=['class_names', 'data', 'num_train_steps'])
  assert results['step'] == 2
  assert ('with changes to class_names, data.eval_folder, data.train_folder, num_train_steps '
          '(allowed)') in capsys.readouterr().out
  records = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['keys'] for r in records if r.get('event') == 'resumed_with_changes'] == [
      ['class_names', 'data.eval_folder', 'data.train_folder', 'num_train_steps']]


@pytest.mark.long
def test_a_full_disk_for_the_metrics_ends_the_run_with_the_checkpoint_intact(
    tmp_path, embedded_data_dir, monkeypatch):
  """The disk fills up in the middle of a metrics record: one error naming the checkpoint to go
  on from; the rerun resumes from it, and the torn record is skipped where metrics are read."""
  import tensorflow as tf
  workdir = str(tmp_path)
  config = lambda steps: tiny_config(**{'data.data_dir': embedded_data_dir,
                                        'data.eval_split': 'test[:32]',
                                        'num_train_steps': steps})
  first = loop.train_and_evaluate(config(2), workdir)
  real_file = tf.io.gfile.GFile

  class FullDisk(real_file):
    def write(self, data):
      super().write(data[:len(data) // 2])
      super().flush()
      raise tf.errors.ResourceExhaustedError(None, None, 'No space left on device')

  monkeypatch.setattr(tf.io.gfile, 'GFile', lambda path, mode='r': (
      FullDisk if path.endswith('metrics.jsonl') and mode == 'a' else real_file)(path, mode))
  with pytest.raises(MetricsError, match=r'could not write the metrics of .*No space left on '
                                         r'device.*last good checkpoint is step 2 .*Rerunning '
                                         r'the same command resumes from it'):
    loop.train_and_evaluate(config(4), workdir, allow_changes=['num_train_steps'])
  monkeypatch.undo()
  assert ckpt_lib.finished_steps(os.path.join(workdir, 'checkpoints')) == [2]
  assert not open(os.path.join(workdir, 'metrics.jsonl')).read().endswith('\n')  # torn
  results = loop.train_and_evaluate(config(4), workdir, allow_changes=['num_train_steps'])
  assert results['step'] == 4
  assert eval_scores(workdir) == {2: first['eval/top1'], 4: results['eval/top1']}
