"""The cluster launch scripts without a cluster: launch/lib.sh's argument helpers, and
launch/slurm_gpu.sh against stand-ins for Slurm's commands (scontrol, srun) that record what
they are asked to do; launch/local_multiprocess.sh with a stand-in trainer."""
import os
import stat
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lib(call: str) -> str:
  return subprocess.run(['bash', '-c', f'source launch/lib.sh && {call}'], cwd=REPO, check=True,
                        capture_output=True, text=True).stdout


@pytest.mark.parametrize('args,workdir', [
    ('--config c.py --workdir /shared/b0 --x=1', '/shared/b0'),
    ('--workdir=gs://bucket/run', 'gs://bucket/run'),
    ('--workdir /a --workdir=/b', '/b'),
    ('--config c.py', ''),
])
def test_workdir_from_args(args, workdir):
  assert lib(f'workdir_from_args {args}') == workdir


def test_cache_flag_unless_given():
  assert lib('cache_flag /w --workdir /w') == '--config.compilation_cache_dir=/w/compilation_cache'
  assert lib('cache_flag /w --workdir /w --config.compilation_cache_dir=/c') == ''


def stub(folder, name, body):
  path = folder / name
  path.write_text('#!/usr/bin/env bash\n' + body)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize('exit_code', [0, 143, 75])  # done, preempted, a process lost
def test_slurm_script_starts_every_task_and_requeues_a_preempted_job(tmp_path, exit_code):
  log = tmp_path / 'calls'
  stub(tmp_path, 'scontrol', f'echo "scontrol $*" >> {log}\n'
       # A long list (more than a pipe holds): a reader that stops at the first line must
       # not fail the job.
       '[ "$1 $2" = "show hostnames" ] && printf "gpu-node-%s\\n" 7 8 $(seq 100 30000)\n'
       'exit 0\n')
  stub(tmp_path, 'srun', 'args="$*"\n'  # one line: the task command spans several
       f'echo "srun coordinator=$JAX_COORDINATOR_ADDRESS processes=$JAX_NUM_PROCESSES '
       f'${{args//$\'\\n\'/ }}" >> {log}\nexit {exit_code}\n')
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SLURM_JOB_ID='40123',
             SLURM_JOB_NODELIST='gpu-node-[7-8]', SLURM_NTASKS='16', SLURM_JOB_NUM_NODES='2',
             SLURM_SUBMIT_DIR=REPO)
  result = subprocess.run(['bash', 'launch/slurm_gpu.sh', '--config',
                           'configs/efficientnet.py:variant=b0', '--workdir', '/shared/b0'],
                          cwd=REPO, env=env, capture_output=True, text=True)
  assert result.returncode == exit_code, result.stderr
  calls = log.read_text().splitlines()
  srun = [c for c in calls if c.startswith('srun')]
  assert len(srun) == 1
  assert 'coordinator=gpu-node-7:20123 processes=16' in srun[0]  # port 20000 + job id % 20000
  assert 'JAX_PROCESS_ID=$SLURM_PROCID' in srun[0]  # each task its own id
  assert srun[0].split()[3] == '--kill-on-bad-exit=1'  # one task fails: srun ends the others
  assert '-m effnet_jax.main' in srun[0] and '--workdir /shared/b0' in srun[0]
  assert srun[0].endswith('--config.compilation_cache_dir=/shared/b0/compilation_cache')
  requeued = [c for c in calls if c.startswith('scontrol requeue')]
  assert requeued == (['scontrol requeue 40123'] if exit_code == 143 else [])


def test_slurm_script_needs_a_workdir(tmp_path):
  stub(tmp_path, 'scontrol', 'echo gpu-node-1\n')
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SLURM_JOB_ID='1',
             SLURM_JOB_NODELIST='gpu-node-1', SLURM_SUBMIT_DIR=REPO)
  result = subprocess.run(['bash', 'launch/slurm_gpu.sh', '--config', 'c.py'], cwd=REPO, env=env,
                          capture_output=True, text=True)
  assert result.returncode != 0 and 'give --workdir' in result.stderr


def test_local_script_kills_the_others_when_a_process_fails(tmp_path):
  """Process 1 of 3 exits with 3: the script kills processes 0 and 2 at once — with SIGKILL (the
  stand-in ignores SIGTERM, which would ask the trainer for a checkpoint) — and exits with 3."""
  log = tmp_path / 'calls'
  stub(tmp_path, 'python', f'echo "process $JAX_PROCESS_ID: $*" >> {log}\n'
       '[ "$JAX_PROCESS_ID" = 1 ] && { sleep 0.5; exit 3; }\n'
       f'trap \'echo "process $JAX_PROCESS_ID: SIGTERM" >> {log}\' TERM\n'
       'for _ in $(seq 600); do sleep 0.1; done\n')
  start = time.time()
  result = subprocess.run(['launch/local_multiprocess.sh', '-n', '3', '-p', '1234', '-l',
                           str(tmp_path / 'logs'), '--', '--workdir', '/tmp/w'], cwd=REPO,
                          env=dict(os.environ, PYTHON=str(tmp_path / 'python')),
                          capture_output=True, text=True, timeout=30)
  assert result.returncode == 3, result.stderr
  assert time.time() - start < 20  # not the stand-ins' minute
  assert 'process 1 exited with 3' in result.stderr
  assert 'killing the other processes; the last complete checkpoint is kept' in result.stderr
  calls = log.read_text().splitlines()
  assert sorted(calls) == [f'process {i}: -m effnet_jax.main --workdir /tmp/w' for i in range(3)]


def tpu_pod(tmp_path, *args):
  """``launch/tpu_pod.sh ARGS`` against a gcloud that records its calls: (result, calls)."""
  log = tmp_path / 'calls'
  stub(tmp_path, 'gcloud', f'args="$*"\necho "gcloud ${{args//$\'\\n\'/ }}" >> {log}\n')
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', ZONE='us-central2-b',
             TPU_NAME='pod-a')
  result = subprocess.run(['bash', 'launch/tpu_pod.sh', *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
  return result, log.read_text().splitlines() if log.exists() else []


def pod_command(tmp_path, *args) -> str:
  """``launch/tpu_pod.sh ARGS``, which must succeed with one ssh to every worker of the slice in
  the zone: the command that ssh runs."""
  result, calls = tpu_pod(tmp_path, *args)
  assert result.returncode == 0, result.stderr
  (call,) = calls
  assert call.startswith('gcloud compute tpus tpu-vm ssh pod-a --worker=all')
  assert call.endswith('--zone=us-central2-b')
  return call


def test_tpu_pod_start_runs_the_trainer_on_every_worker(tmp_path):
  call = pod_command(tmp_path, 'start', '--', '--config', 'configs/efficientnet.py:variant=b0',
                     '--workdir', 'gs://bucket/b0')
  assert ('-m effnet_jax.main --config configs/efficientnet.py:variant=b0 --workdir gs://bucket/b0 '
          '--config.compilation_cache_dir=gs://bucket/b0/compilation_cache' in call)

  local, _ = tpu_pod(tmp_path, 'start', '--', '--workdir', '/tmp/run')
  assert local.returncode == 2 and 'must be a bucket' in local.stderr


def test_tpu_pod_evaluate_runs_on_every_worker(tmp_path):
  call = pod_command(tmp_path, 'evaluate', '--', '--workdir', 'gs://bucket/b0',
                     '--image_sizes', '224,256')
  # (quoted with printf %q for the worker's shell, which reads 224\\,256 as 224,256)
  assert '-m effnet_jax.evaluate --workdir gs://bucket/b0 --image_sizes 224\\,256' in call
