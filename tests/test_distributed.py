"""When effnet_jax.main calls jax.distributed.initialize, and with what; how a process stops when
the run loses another (effnet_jax/distributed.py)."""
import os
import socket
import subprocess
import sys

import pytest

from effnet_jax import distributed
from effnet_jax.distributed import ClusterError, initialize_arguments, tpu_chips_present

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOCAL = {'coordinator_address': '127.0.0.1:8476', 'num_processes': 2, 'process_id': 1}


def arguments(mode='auto', coordinator=None, count=None, index=None, environ=None, tpu=False):
  return initialize_arguments(mode, coordinator, count, index, environ or {}, tpu)


def test_explicit_coordinator_from_flags_or_environment():
  assert arguments(coordinator='127.0.0.1:8476', count=2, index=1) == LOCAL
  environ = {'JAX_COORDINATOR_ADDRESS': '127.0.0.1:8476', 'JAX_NUM_PROCESSES': '2',
             'JAX_PROCESS_ID': '0'}
  assert arguments(environ=environ, index=1) == LOCAL  # a flag wins over the environment
  assert arguments('off', environ=environ) is None


@pytest.mark.parametrize('environ, tpu', [
    ({}, False),  # a laptop, one GPU box
    ({'SLURM_PROCID': '0', 'SLURM_NTASKS': '4'}, False),  # the sbatch script, before srun
    ({'SLURM_STEP_NUM_TASKS': '1', 'SLURM_PROCID': '0'}, False),  # srun -n 1
])
def test_single_process(environ, tpu):
  assert arguments(environ=environ, tpu=tpu) is None


@pytest.mark.parametrize('environ, tpu', [
    ({}, True),  # a Cloud TPU VM: JAX reads the workers from the metadata server
    ({'SLURM_STEP_NUM_TASKS': '8', 'SLURM_PROCID': '3'}, False),  # srun -n 8
    ({'OMPI_COMM_WORLD_SIZE': '2'}, False),  # mpirun -np 2
])
def test_clusters_are_detected_by_jax(environ, tpu):
  assert arguments(environ=environ, tpu=tpu) == {}
  assert arguments('off', environ=environ, tpu=tpu) is None


def test_on_leaves_detection_to_jax():
  assert arguments('on') == {}


@pytest.mark.parametrize('kwargs, message', [
    (dict(coordinator='10.0.0.1:1234', count=2), 'without --process_id'),
    (dict(coordinator='10.0.0.1:1234'), 'without --num_processes and --process_id'),
    (dict(coordinator='10.0.0.1', count=2, index=0), 'expected HOST:PORT'),
    (dict(coordinator='10.0.0.1:1234', count=2, index=2), '0 <= process_id < num_processes'),
    (dict(count=2, index=0), 'need --coordinator_address'),
    (dict(environ={'JAX_NUM_PROCESSES': 'two'}), "JAX_NUM_PROCESSES='two'"),
    (dict(mode='yes'), "--distributed='yes'"),
])
def test_incomplete_settings_are_clear_errors(kwargs, message):
  with pytest.raises(ClusterError, match=message):
    arguments(**kwargs)


def test_tpu_chips_are_found_on_the_pci_bus(tmp_path):
  for device, vendor in (('0000:00:04.0', '0x1af4'), ('0000:00:05.0', '0x1ae0')):
    (tmp_path / device).mkdir()
    (tmp_path / device / 'vendor').write_text(vendor + '\n')
  assert tpu_chips_present(str(tmp_path / '*' / 'vendor'))
  (tmp_path / '0000:00:05.0' / 'vendor').write_text('0x10de\n')  # an NVIDIA GPU
  assert not tpu_chips_present(str(tmp_path / '*' / 'vendor'))


def test_the_lost_process_message_says_what_is_kept_and_how_to_go_on():
  kept = 'The last complete checkpoint in /w is kept: rerunning the same command resumes from it.'
  coordinator = distributed.lost_process_message(1, 4, True, kept)
  assert coordinator.startswith('effnet_jax: process 1 of 4 stopped: the coordinator, process 0, '
                                'is gone') and coordinator.endswith(kept)
  other = distributed.lost_process_message(0, 4, False, kept)
  assert 'another process of the run was lost' in other and other.endswith(kept)
  assert '\n' not in coordinator + other


def test_reachable():
  with socket.socket() as listening:
    listening.bind(('127.0.0.1', 0))
    listening.listen()
    address = f'127.0.0.1:{listening.getsockname()[1]}'
    assert distributed.reachable(address)
  assert not distributed.reachable(address)  # closed: refused
  assert distributed.reachable(None)  # unknown


def test_a_single_process_leaves_as_usual():
  distributed.leave(1)  # returns
  with pytest.raises(KeyError), distributed.leave_on_crash():
    raise KeyError('raised as usual')


ABORT = '''
import faulthandler, os, sys
faulthandler.enable()  # as absl's app.run does: it would report "Fatal Python error: Aborted"
from effnet_jax import distributed
distributed._run.update(process_id=1, num_processes=2, coordinator=sys.argv[1],
                        after_loss='Rerun.')
distributed._end_cleanly_on_abort()
print('partial line', end='')  # flushed before the message
os.abort()  # as JAX's coordination client's LOG(FATAL) does
'''


def test_an_abort_in_a_multi_process_run_becomes_the_message_and_exit_code():
  with socket.socket() as free:
    free.bind(('127.0.0.1', 0))
    address = f'127.0.0.1:{free.getsockname()[1]}'  # nothing listens: the coordinator is gone
  result = subprocess.run([sys.executable, '-c', ABORT, address], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == distributed.LOST_PROCESS_EXIT_CODE, result.stderr
  assert result.stdout == 'partial line'
  assert result.stderr == distributed.lost_process_message(1, 2, True, 'Rerun.') + '\n'
