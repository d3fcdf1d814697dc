"""The multi-host code path on one machine: 2 processes x 2 CPU devices, started by
launch/local_multiprocess.sh, train step for step what 1 process x 4 devices trains, on an image
folder with a corrupt JPEG (skipped and counted); the preemption agreement; a process killed
mid-training stops the other."""
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from effnet_jax.checkpoints import item_handlers
from effnet_jax.distributed import LOST_PROCESS_EXIT_CODE
from test_loop import TWO_STAGES
from tests.conftest import built_once

# One worker runs the module (pytest-xdist); its tests share the two runs, built once per
# session through built_once (a module fixture was built two or three times per session).
pytestmark = pytest.mark.xdist_group('multihost')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 6


def write_image_folder(root: pathlib.Path) -> str:
  """3 classes x 8 random PNGs, and a truncated JPEG in class 'bee'."""
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for name in ('ant', 'bee', 'cat'):
    (root / name).mkdir(exist_ok=True)
    for index in range(8):
      Image.fromarray(rng.integers(0, 256, (20, 24, 3), np.uint8)).save(
          root / name / f'{index}.png')
  (root / 'bee' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated JPEG')
  return str(root)


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
  return write_image_folder(tmp_path_factory.mktemp('images'))


def main_flags(workdir, folder, steps=STEPS):
  """The embedded default job shrunk to seconds: a phi=-12 EfficientNet cut to two MBConv stages
  (its train step compiles in a third of the seven-stage time), depthwise convolutions as XLA's
  grouped convolution, no EMA."""
  return [f'--workdir={workdir}', '--config.data.source=folder',
          f'--config.data.train_folder={folder}', f'--config.data.eval_folder={folder}',
          '--config.data.on_bad_image=skip', '--config.model_overrides.phi=-12',
          f'--config.model_overrides.stages={TWO_STAGES!r}',
          '--config.model_overrides.depthwise_impl=xla', '--config.ema_decay=0',
          '--config.input.image_size=16', '--config.input.eval_image_size=16', '--config.batch_size=16',
          f'--config.num_train_steps={steps}', '--config.log_every_steps=1',
          '--config.checkpoint_every_steps=3', '--config.eval_every_epochs=0',
          '--config.progress_bar=False', '--config.tensorboard=False']


def environment(devices=None):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3', PYTHON=sys.executable)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}' if devices else ''
  return env


@pytest.fixture(scope='session')
def runs():
  """{'single': (exit code, output, workdir), 'multi': ...}: run side by side (2 cores), once
  per session."""
  return built_once('multihost-runs', lambda root: train_both(pathlib.Path(root)))


def train_both(root: pathlib.Path) -> dict:
  image_folder = write_image_folder(root / 'images')
  procs = {
      'single': subprocess.Popen(
          [sys.executable, '-m', 'effnet_jax.main', *main_flags(root / 'single', image_folder)],
          cwd=REPO, env=environment(devices=4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
          text=True),
      'multi': subprocess.Popen(
          ['launch/local_multiprocess.sh', '-n', '2', '-d', '2', '-l', str(root / 'logs'), '--',
           *main_flags(root / 'multi', image_folder)],
          cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
          text=True),
  }
  results = {}
  for name, proc in procs.items():
    out, _ = proc.communicate(timeout=600)
    results[name] = (proc.returncode, out, str(root / name))
  results['process_1_log'] = (root / 'logs' / 'process_1.log').read_text()
  return results


def records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def final_state(workdir):
  """The last checkpoint's state as host arrays (whatever process count saved it)."""
  manager = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                                  item_handlers=item_handlers())
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree_util.tree_map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      manager.item_metadata(STEPS)['state'])
  restored = manager.restore(STEPS, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target)))
  manager.close()
  return jax.device_get(restored['state'])


@pytest.mark.long
def test_two_processes_train_what_one_process_trains(runs):
  (code_1, out_1, single), (code_2, out_2, multi) = runs['single'], runs['multi']
  assert code_1 == 0, out_1
  assert code_2 == 0, out_2 + runs['process_1_log']
  assert '4 devices (cpu), 1 processes' in out_1 and '4 devices (cpu), 2 processes' in out_2
  assert 'final: step 6' in out_2 and 'final:' not in runs['process_1_log']  # process 0 logs
  losses = [{r['step']: r['train/loss'] for r in records(w) if 'train/loss' in r}
            for w in (single, multi)]
  assert sorted(losses[0]) == sorted(losses[1]) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([losses[1][s] for s in range(1, STEPS + 1)],
                             [losses[0][s] for s in range(1, STEPS + 1)], rtol=1e-5)
  a, b = final_state(single), final_state(multi)
  assert int(a['step']) == int(b['step']) == STEPS
  for name in ('params', 'batch_stats'):  # the same up to the order of float sums (gloo's)
    chex.assert_trees_all_close(b[name], a[name], rtol=1e-4, atol=2e-5)


def test_a_corrupt_image_is_skipped_and_counted(runs):
  for name in ('single', 'multi'):
    code, out, workdir = runs[name]
    assert code == 0 and 'skipped 1 unreadable train images' in out, out
    skipped = [r for r in records(workdir) if r.get('event') == 'skipped_images']
    assert len(skipped) == 1 and skipped[0]['count'] == 1
    assert skipped[0]['files'][0].endswith('bee/broken.jpg')
    final = [r for r in records(workdir) if r.get('final')][0]
    assert final['eval/count'] == 24  # the 24 readable images, each once over the processes


AGREE = '''
import sys, time
import jax
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
from effnet_jax.train.preemption import PreemptionNotice
with PreemptionNotice() as notice:
  print('ready', flush=True)
  step = 0
  while not notice.reached(step):
    step += 1
    time.sleep(0.002)
print('saving after step', step, flush=True)
'''


def free_port() -> str:
  return subprocess.run([sys.executable, '-c', 'import socket; s = socket.socket(); '
                         's.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'],
                        capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def two_processes(script, stderr=subprocess.DEVNULL):
  """``script`` run by 2 processes (argv: coordinator address, process id; 1 CPU device each),
  killed if still running afterwards."""
  port = free_port()
  procs = [subprocess.Popen([sys.executable, '-c', script, f'127.0.0.1:{port}', str(i)],
                            cwd=REPO, env=environment(devices=1), stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
           for i in range(2)]
  try:
    yield procs
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()


def test_processes_agree_on_the_preemption_step():
  """SIGTERM to one process of two: both stop at the same step (where the loop saves)."""
  with two_processes(AGREE) as procs:
    for proc in procs:
      assert proc.stdout.readline().strip() == 'ready'
    procs[1].send_signal(signal.SIGTERM)
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
  assert [proc.returncode for proc in procs] == [0, 0], outs
  assert outs[0].startswith('saving after step') and outs[0] == outs[1], outs


def test_two_processes_evaluate_a_checkpoint(runs):
  """``effnet_jax.evaluate`` on 2 processes (each reads half the eval split) reproduces the
  run's own final evaluation of the same checkpoint; process 0 prints."""
  code, out, multi = runs['multi']
  assert code == 0, out
  final = [r for r in records(multi) if r.get('final')][0]
  result = subprocess.run(['launch/local_multiprocess.sh', '-n', '2', '-d', '2', '-m',
                           'effnet_jax.evaluate', '--', f'--workdir={multi}', '--image_sizes', '16',
                           '--json'], cwd=REPO, env=environment(), capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  (row,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]
  assert row['step'] == STEPS and row['image_size'] == 16
  assert row['eval/count'] == final['eval/count'] == 24  # each readable image once
  assert row['eval/top1'] == final['eval/top1']
  assert row['eval/loss'] == pytest.approx(final['eval/loss'], rel=1e-5)


BARRIER = '''
import sys, time
import jax
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
jax.devices()  # the backend, with its collectives, before the client is hidden below
from jax._src import distributed as jax_distributed
from effnet_jax.distributed import barrier
for private_api in (True, False):  # the coordination service's barrier, then the fallback
  if int(sys.argv[2]) == 1:
    time.sleep(3)  # process 1 comes late; process 0 must wait for it
  client = jax_distributed.global_state.client
  if not private_api:
    jax_distributed.global_state.client = None
  barrier(f'test/{private_api}')
  jax_distributed.global_state.client = client
  print(f'passed {private_api} at {time.time():.3f}', flush=True)
'''


def test_barrier_waits_for_every_process():
  """distributed.barrier, through JAX's coordination client and through its fallback (a device
  collective, for a JAX without that private client): the early process waits for the late."""
  with two_processes(BARRIER, stderr=subprocess.STDOUT) as procs:
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
  assert [proc.returncode for proc in procs] == [0, 0], outs
  times = [{line.split()[1]: float(line.split()[-1]) for line in out.splitlines()
            if line.startswith('passed')} for out in outs]
  for path in ('True', 'False'):
    # process 0 passed only once process 1 (3 s late) arrived
    assert times[0][path] >= times[1][path] - 0.5, (path, times)


def first_train_record(workdir, procs, timeout=300):
  """Waits until process 0 has written a train loss (the processes are in the step loop)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert all(proc.poll() is None for proc in procs), [proc.returncode for proc in procs]
    if os.path.exists(path) and any('train/loss' in record for record in records(workdir)):
      return
    time.sleep(0.2)
  raise TimeoutError(f'no train loss in {path} after {timeout} s')


@pytest.mark.parametrize('victim', [1, 0], ids=['process_1', 'coordinator'])
def test_a_process_killed_mid_training_stops_the_other(tmp_path, image_folder, victim):
  """SIGKILL to one of two training processes: the other stops within 30 s (the heartbeat
  timeout, 10 s; at once when the coordinator is gone) with one line saying what was lost, what
  is kept and how to go on, and exit code 75 — no abort."""
  workdir, port = tmp_path / 'run', free_port()
  logs = [open(tmp_path / f'process_{i}.log', 'w') for i in range(2)]
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'effnet_jax.main', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}', *main_flags(workdir, image_folder, steps=10000)],
      cwd=REPO, env=environment(devices=2), stdout=logs[i], stderr=subprocess.STDOUT)
      for i in range(2)]
  survivor = procs[1 - victim]
  try:
    first_train_record(str(workdir), procs)
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.time()
    try:
      survivor.wait(timeout=30)
    except subprocess.TimeoutExpired:
      pytest.fail(f'process {1 - victim} still runs 30 s after process {victim} was killed')
    seconds = time.time() - killed
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    for log in logs:
      log.close()
  output = (tmp_path / f'process_{1 - victim}.log').read_text()
  assert survivor.returncode == LOST_PROCESS_EXIT_CODE, output[-3000:]
  assert 'Fatal Python error' not in output and 'Aborted' not in output, output[-3000:]
  last = output.rstrip().splitlines()[-1]
  assert last.startswith(f'effnet_jax: process {1 - victim} of 2 stopped: '), output[-3000:]
  lost = ('the coordinator, process 0, is gone' if victim == 0 else
          'another process of the run was lost')
  assert lost in last
  assert last.endswith(f'The last complete checkpoint in {workdir} is kept: rerunning the same '
                       'command (every process) resumes from it.')
  print(f'process {1 - victim} stopped {seconds:.1f} s after process {victim} was killed')
