"""The trainer end to end: real pipeline, checkpoints, resume after SIGKILL/SIGTERM, bad input."""
import builtins
import errno
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from effnet_jax import checkpoints as ckpt_lib
from effnet_jax.checkpoints import CheckpointError, item_handlers
from effnet_jax.train.loop import PREEMPTED_EXIT_CODE, train_and_evaluate
from effnet_jax.train.metrics import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(REPO, 'configs', 'default.py')


# A phi=-12 EfficientNet cut to two MBConv stages, depthwise convolutions as XLA's grouped
# convolution: its train step compiles in about a third of the seven-stage, unrolled-depthwise
# time, which dominates every trainer test on a 2-core CI machine.
TWO_STAGES = (('ir_r1_k3_s2_e1_c16_se0.25',), ('ir_r1_k3_s2_e6_c24_se0.25',))


def tiny_config(**changes):
  """The embedded default config shrunk to seconds: a two-stage phi=-12 EfficientNet at 16 px
  (``'model_overrides.stages': None`` restores the model's own stages)."""
  sys.path.insert(0, os.path.dirname(DEFAULT_CONFIG))
  try:
    import default  # configs/default.py
  finally:
    sys.path.pop(0)
  c = default.get_config()
  c.model_overrides.phi = -12.0
  c.model_overrides.stages = TWO_STAGES
  c.model_overrides.depthwise_impl = 'xla'
  c.input.update(image_size=16, eval_image_size=16)
  c.batch_size = 16
  c.num_train_steps = 6
  c.log_every_steps = 2
  c.eval_every_epochs = 0.0
  c.checkpoint_every_steps = 3
  c.progress_bar = False
  c.tensorboard = False
  c.async_checkpoints = False
  c.update_from_flattened_dict(changes)
  c.lock()
  return c


# Command-line flags giving the same tiny run through `python -m effnet_jax.main`.
TINY_FLAGS = ['--config.model_overrides.phi=-12', f'--config.model_overrides.stages={TWO_STAGES!r}',
              '--config.model_overrides.depthwise_impl=xla', '--config.input.image_size=16',
              '--config.input.eval_image_size=16', '--config.batch_size=16',
              '--config.log_every_steps=10', '--config.eval_every_epochs=0',
              '--config.progress_bar=False', '--config.tensorboard=False',
              '--config.data.eval_split=test[:256]']


def saved_state(workdir, step):
  manager = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                                  item_handlers=item_handlers())
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return restored['state']


def test_end_to_end_on_mock_tfds(tmp_path, mock_tfds):
  """One train and eval pass through the real pipeline on mock TFDS data, 4 devices."""
  workdir = str(tmp_path / 'workdir')
  with mock_tfds({'fashion_mnist': ('train', 'test')}, 37) as data_dir:  # last batch padded
    config = tiny_config(**{'data.source': 'tfds', 'data.name': 'fashion_mnist',
                            'data.data_dir': data_dir, 'data.cache': False,
                            'num_train_steps': 4})
    results = train_and_evaluate(config, workdir)
  assert results['step'] == 4 and results['eval/count'] == 37
  assert 0 <= results['eval/top1'] <= 1 and 'eval_ema/top1' in results
  records = read_metrics(workdir)
  compiles = [r for r in records if r.get('event') == 'compile']
  assert compiles and compiles[0]['fn'] == 'train_step' and compiles[0]['image_size'] == 16
  train = [r for r in records if 'train/loss' in r]
  assert [r['step'] for r in train] == [2, 4]
  for key in ('train/loss', 'train/learning_rate', 'train/images_per_sec', 'train/top1'):
    assert np.isfinite(train[-1][key])
  final = [r for r in records if r.get('final')]
  assert final and final[0]['eval/top1'] == results['eval/top1']
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '4'))


def test_wrong_model_checkpoint_is_rejected(tmp_path, embedded_data_dir):
  train_and_evaluate(tiny_config(**{'data.data_dir': embedded_data_dir,
                                    'data.eval_split': 'test[:32]', 'num_train_steps': 1}),
                     str(tmp_path))
  other = tiny_config(**{'data.data_dir': embedded_data_dir, 'model': 'rexnet_100',
                         'data.eval_split': 'test[:32]', 'model_overrides.stages': None,
                         'num_train_steps': 2})
  # the run description first: what differs, and the flag that allows it
  with pytest.raises(ValueError, match=r"another run description than this config: model: "
                                       r"'efficientnet_b0' -> 'rexnet_100'; model_overrides."
                                       r"stages: .*--allow_changes=model,model_overrides.stages,"
                                       r"num_train_steps$"):
    train_and_evaluate(other, str(tmp_path))
  # allowed, the weights themselves still have to fit the model
  with pytest.raises(ValueError, match=r'does not match the model(.|\n)*missing from the '
                                       r'checkpoint(.|\n)*stages_0'):
    train_and_evaluate(other, str(tmp_path), allow_changes=['all'])


def test_nan_loss_stops_with_a_clear_message(tmp_path, embedded_data_dir):
  config = tiny_config(**{'data.data_dir': embedded_data_dir, 'num_train_steps': 8,
                          'optimizer.base_learning_rate': 1e30, 'checkpoint_every_steps': 2,
                          'log_every_steps': 8, 'ema_decay': 0.0})
  with pytest.raises(FloatingPointError, match=r'(loss is nan at step \d+|parameters are not '
                                               r'finite after step \d+)(.|\n)*last good '
                                               r'checkpoint is step (\d+)') as error:
    train_and_evaluate(config, str(tmp_path))
  good = int(error.value.args[0].split('checkpoint is step ')[1].split()[0])
  assert ckpt_lib.finished_steps(os.path.join(tmp_path, 'checkpoints'))[-1] == good
  for leaf in jax.tree_util.tree_leaves(saved_state(str(tmp_path), good)['params']):
    assert np.isfinite(leaf).all()  # a checkpoint to restart from, not the diverged state


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, embedded_data_dir,
                                                              monkeypatch):
  """ENOSPC in the middle of an async save (injected where Orbax writes the checkpoint's files,
  once the disk is 'full' from step 4 on): a clear error, and step 2 still restores."""
  real_open = builtins.open

  def open_on_a_full_disk(file, mode='r', *args, **kwargs):
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else ''
    if 'w' in mode and '/checkpoints/4.orbax-checkpoint-tmp' in name:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
    return real_open(file, mode, *args, **kwargs)

  config = tiny_config(**{'data.data_dir': embedded_data_dir, 'checkpoint_every_steps': 2,
                          'async_checkpoints': True, 'ema_decay': 0.0,
                          'model_overrides.depthwise_impl': 'xla',  # compiles in seconds
                          'model_overrides.stages': (('ir_r1_k3_s2_e1_c16_se0.25',),)})
  monkeypatch.setattr(builtins, 'open', open_on_a_full_disk)
  with pytest.raises(CheckpointError, match=r'No space left on device(.|\n)*latest complete '
                                            r'checkpoint, step 2, is intact'):
    train_and_evaluate(config, str(tmp_path))
  monkeypatch.undo()
  manager = ckpt_lib.create_manager(str(tmp_path))  # what the rerun resumes from
  assert manager.latest_step() == 2
  manager.close()
  assert int(saved_state(str(tmp_path), 2)['step']) == 2


def run_main(workdir, data_dir, extra=(), devices=4, wait=True):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  cmd = [sys.executable, '-m', 'effnet_jax.main', f'--workdir={workdir}',
         f'--config.data.data_dir={data_dir}', *TINY_FLAGS, *extra]
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if wait:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out
  return proc


def wait_for(predicate, proc, timeout=300):
  start = time.time()
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(f'process ended early:\n{proc.stdout.read()}')
    if time.time() - start > timeout:
      proc.kill()
      raise AssertionError('timed out')
    time.sleep(0.05)


def finished_steps(workdir):
  root = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []


@pytest.mark.long
def test_sigkill_then_restart_ends_with_the_same_parameters(tmp_path, embedded_data_dir):
  steps = ['--config.num_train_steps=240', '--config.checkpoint_every_steps=40']
  reference, killed = str(tmp_path / 'reference'), str(tmp_path / 'killed')
  code, out = run_main(reference, embedded_data_dir, steps)
  assert code == 0, out
  proc = run_main(killed, embedded_data_dir, steps, wait=False)
  wait_for(lambda: finished_steps(killed), proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  interrupted_at = finished_steps(killed)[-1]
  assert interrupted_at < 240, 'the run finished before it could be killed'
  code, out = run_main(killed, embedded_data_dir, steps)
  assert code == 0, out
  assert 'resumed from' in out and f'step {interrupted_at}' in out
  a, b = saved_state(reference, 240), saved_state(killed, 240)
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.mark.long
def test_sigterm_saves_and_resumes_on_another_device_count(tmp_path, embedded_data_dir):
  workdir = str(tmp_path)
  steps = ['--config.num_train_steps=2000', '--config.checkpoint_every_steps=1000']
  proc = run_main(workdir, embedded_data_dir, steps, wait=False)
  metrics = os.path.join(workdir, 'metrics.jsonl')
  wait_for(lambda: os.path.exists(metrics) and 'train/loss' in open(metrics).read(), proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == PREEMPTED_EXIT_CODE, out
  assert 'Traceback' not in out and 'SIGTERM: saved step' in out
  saved = finished_steps(workdir)
  assert saved and 0 < saved[-1] < 2000
  # Resume on 2 devices instead of 4 and finish a short run.
  code, out = run_main(workdir, embedded_data_dir,
                       ['--config.num_train_steps=' + str(saved[-1] + 4),
                        '--allow_changes=num_train_steps'], devices=2)
  assert code == 0, out
  assert 'resumed from' in out and '2 devices' in out
  assert 'with changes to num_train_steps (allowed)' in out
  assert finished_steps(workdir)[-1] == saved[-1] + 4


@pytest.mark.parametrize('flag, message', [
    ('--config.optimizer.learning_rat=0.1', 'Did you mean "base_learning_rate"'),
    ('--config.model_overrides.widht_mult=0.5', 'Did you mean "width_mult"'),
    ('--config.model=efficientnet_b9', "unknown model 'efficientnet_b9'"),
])
def test_config_typos_are_clear_errors(tmp_path, flag, message):
  code, out = run_main(str(tmp_path), str(tmp_path / 'tfds'), [flag])
  assert code != 0 and message in out and 'Traceback' not in out, out


def test_missing_data_set_is_a_clear_error(tmp_path):
  code, out = run_main(str(tmp_path), str(tmp_path / 'empty'),
                       ['--config.data.source=tfds', '--config.data.name=imagenet2012'])
  assert code != 0 and "'imagenet2012' is not prepared" in out and 'manual_dir' in out, out
  assert 'Traceback' not in out


def test_rarely_run_programs_compile_at_o1_to_the_same_bits():
  """builders.compile_rarely (LLVM -O1 on the CPU) initializes a network bit for bit as jax.jit's
  default compilation does."""
  import optax

  from effnet_jax.models import build_model, get_model_config
  from effnet_jax.train import builders
  model = build_model(get_model_config('efficientnet_b0', phi=-12.0, stages=TWO_STAGES,
                                       num_classes=10))
  init = lambda: builders.init_state(model, optax.sgd(0.1, momentum=0.9), 16, 0, True)
  # the reference at XLA's default backend level (3): the suite compiles at 0 (conftest.py)
  reference = jax.jit(init).lower().compile(
      compiler_options={'xla_backend_optimization_level': 3})()
  fast = builders.compile_rarely(init)()
  for x, y in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(reference),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_finiteness_check_before_a_save_reads_every_shard_on_the_host(bad):
  """The check that stops a diverged state from being saved: replicated and sharded arrays over
  the 4 test devices, float32 and bfloat16 leaves; one bad element anywhere is found."""
  from effnet_jax.train import loop
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ('data',))
  spec = jax.sharding.PartitionSpec
  replicated = jax.sharding.NamedSharding(mesh, spec())
  sharded = jax.sharding.NamedSharding(mesh, spec('data'))
  values = {'w': np.ones((3, 5), np.float32), 'b': np.ones((8,), jax.numpy.bfloat16),
            'rows': np.ones((8, 2), np.float32)}
  where = {'w': replicated, 'b': replicated, 'rows': sharded}
  put = lambda tree: {k: jax.device_put(v, where[k]) for k, v in tree.items()}
  assert loop._all_finite(put(values))
  for key, index in (('w', (2, 4)), ('b', (7,)), ('rows', (6, 1)), ('rows', (0, 0))):
    broken = dict(values)
    broken[key] = values[key].copy()
    broken[key][index] = bad
    assert not loop._all_finite(put(broken)), (key, index)
