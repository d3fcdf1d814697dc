"""Joining a multi-process run: when and how ``effnet_jax.main`` (and ``effnet_jax.evaluate``)
call ``jax.distributed.initialize``.

One process per host (Cloud TPU VM workers, Slurm tasks) or several on one machine (a local
test of the multi-host path) all run the same command; ``jax.distributed.initialize`` connects
them through a coordinator (process 0) before any JAX computation. Where it is called:

* ``--coordinator_address`` (or ``JAX_COORDINATOR_ADDRESS``) given: explicitly, with
  ``--num_processes`` / ``--process_id`` (or ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``) — GPU
  clusters without Slurm, and N processes on one machine (launch/local_multiprocess.sh).
* otherwise, with ``--distributed=auto`` (the default), where a cluster is recognised: a Cloud
  TPU VM (JAX reads the workers from the VM's metadata), a Slurm job step of more than one task
  (``srun``; launch/slurm_gpu.sh), an Open MPI job (``mpirun``). JAX finds the coordinator itself.
* nowhere else: a single process (a laptop, one GPU box). ``--distributed=off`` forces this,
  ``--distributed=on`` forces JAX's auto-detection.

Cross-process collectives on CPU use gloo (JAX's default ``jax_cpu_collectives_implementation``),
whose communicators give a late peer 30 s: :func:`barrier` lines the processes up first where
they may drift apart by more (start-up, compiling).

When a process of the run dies (killed, crashed, or ended by its own error), the others stop
within about :data:`HEARTBEAT_TIMEOUT_SECONDS` (at once when it was the coordinator) with one
line on stderr and exit code :data:`LOST_PROCESS_EXIT_CODE`. JAX's coordination service notices
the loss (a process missed its heartbeats, or the coordinator, process 0, no longer answers) and
its client ends every process with a C++ ``LOG(FATAL)``: an abort, which Python's faulthandler
reports as "Fatal Python error: Aborted". JAX offers no Python hook for that moment (the
client's ``missed_heartbeat_callback`` cannot be given a Python function: jaxlib fails to pass it
the status and terminates), so :func:`initialize` turns SIGABRT into that line and a plain exit.
A process with an error of its own leaves at once (:func:`leave`, :func:`leave_on_crash`) rather
than in JAX's shutdown barrier at exit, which would wait for the others while they wait for it.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import signal
import socket
import sys
import time
import traceback
from typing import Mapping

MODES = ('auto', 'on', 'off')
_GOOGLE_PCI_VENDOR = '0x1ae0'  # TPU chips on a Cloud TPU VM
# A process that has not reached the coordination service for this long is lost (JAX's default,
# 100 s, kept the others waiting that long). The heartbeats come from a C++ thread: a busy
# Python (compiling, a long step) does not delay them.
HEARTBEAT_TIMEOUT_SECONDS = 10
# EX_TEMPFAIL (sysexits.h), not 143 (preempted: every process saved at an agreed step): another
# process was lost; the last complete checkpoint is kept, and rerunning the same command resumes.
LOST_PROCESS_EXIT_CODE = 75
_SIGNAL_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)
_run: dict = {}  # this process's place in a multi-process run, once initialize() joined one


def define_flags(module_name: str):
  """Defines the multi-process flags of an entry point (main, evaluate: only entry points
  define flags, at import; ``module_name`` is the caller's ``__name__``, so that its ``--help``
  lists them): ``--distributed``, ``--coordinator_address``, ``--num_processes``,
  ``--process_id``; returns their holders in that order (the arguments of :func:`initialize`)."""
  import sys

  from absl import flags
  if module_name == '__main__':  # absl files a script's flags under its path
    module_name = sys.argv[0]
  return (
      flags.DEFINE_enum('distributed', 'auto', list(MODES),
                        'jax.distributed.initialize: auto = with a coordinator address or on a '
                        'recognised cluster (Cloud TPU VM, srun, mpirun); on = always (JAX '
                        'detects the cluster); off = never.', module_name=module_name),
      flags.DEFINE_string('coordinator_address', None,
                          'HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS).',
                          module_name=module_name),
      flags.DEFINE_integer('num_processes', None,
                           'Processes in the run (default: $JAX_NUM_PROCESSES).',
                           module_name=module_name),
      flags.DEFINE_integer('process_id', None,
                           'This process, 0 .. num_processes - 1 (default: $JAX_PROCESS_ID).',
                           module_name=module_name))


class ClusterError(ValueError):
  """The multi-process settings are incomplete or inconsistent; the message says which."""


def tpu_chips_present(pattern: str = '/sys/bus/pci/devices/*/vendor') -> bool:
  """Whether this machine has Google TPU chips (a Cloud TPU VM), read from the PCI bus."""
  for path in glob.glob(pattern):
    try:
      with open(path, encoding='ascii') as f:
        if f.read().strip() == _GOOGLE_PCI_VENDOR:
          return True
    except OSError:
      continue
  return False


def _int_setting(name: str, flag_value: int | None, environ: Mapping[str, str],
                 env_name: str) -> int | None:
  if flag_value is not None:
    return flag_value
  text = environ.get(env_name, '')
  if not text:
    return None
  try:
    return int(text)
  except ValueError:
    raise ClusterError(f'{env_name}={text!r}: {name} must be an integer') from None


def _cluster_detected(environ: Mapping[str, str], tpu_present: bool) -> bool:
  # SLURM_STEP_NUM_TASKS: set by srun for its tasks, not in the batch script itself (a python
  # started there is one process, whatever the allocation).
  slurm_tasks = environ.get('SLURM_STEP_NUM_TASKS', '1')
  mpi_size = environ.get('OMPI_COMM_WORLD_SIZE', '1')
  return tpu_present or slurm_tasks.isdigit() and int(slurm_tasks) > 1 or (
      mpi_size.isdigit() and int(mpi_size) > 1)


def initialize_arguments(mode: str, coordinator_address: str | None, num_processes: int | None,
                         process_id: int | None, environ: Mapping[str, str],
                         tpu_present: bool) -> dict | None:
  """The keyword arguments for ``jax.distributed.initialize`` (``{}``: JAX detects the
  cluster), or None for a single-process run. Flags win over the environment."""
  if mode not in MODES:
    raise ClusterError(f'--distributed={mode!r}: expected one of {MODES}')
  coordinator = coordinator_address or environ.get('JAX_COORDINATOR_ADDRESS') or None
  count = _int_setting('num_processes', num_processes, environ, 'JAX_NUM_PROCESSES')
  index = _int_setting('process_id', process_id, environ, 'JAX_PROCESS_ID')
  if mode == 'off':
    return None
  if coordinator:
    if count is None or index is None:
      raise ClusterError(
          f'coordinator address {coordinator!r} given without ' +
          ' and '.join(n for n, v in (('--num_processes', count), ('--process_id', index))
                       if v is None) +
          ' (or JAX_NUM_PROCESSES / JAX_PROCESS_ID): every process needs all three')
    if ':' not in coordinator:
      raise ClusterError(f'coordinator address {coordinator!r}: expected HOST:PORT')
    if count < 1 or not 0 <= index < count:
      raise ClusterError(f'process_id {index} / num_processes {count}: expected '
                         '0 <= process_id < num_processes')
    return {'coordinator_address': coordinator, 'num_processes': count, 'process_id': index}
  if count is not None or index is not None:
    raise ClusterError('--num_processes / --process_id (or JAX_NUM_PROCESSES / JAX_PROCESS_ID) '
                       'need --coordinator_address (or JAX_COORDINATOR_ADDRESS): HOST:PORT of '
                       'process 0')
  if mode == 'on' or _cluster_detected(environ, tpu_present):
    return {}
  return None


def barrier(name: str, timeout_seconds: int = 3600) -> None:
  """Waits until every process reaches ``barrier(name)``: the coordination service's barrier
  (minutes of skew are fine) rather than a device collective. ``name`` must be new each time.
  No-op in a single-process run."""
  import jax
  if jax.process_count() == 1:
    return
  try:  # the client initialize() connected (JAX has no public name for it)
    from jax._src import distributed as jax_distributed
    client = jax_distributed.global_state.client
  except (ImportError, AttributeError):
    client = None
  if client is None:  # another JAX: a device collective, which waits as long as the backend lets it
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f'effnet_jax/{name}')
    return
  client.wait_at_barrier(f'effnet_jax/{name}', timeout_in_ms=timeout_seconds * 1000)


def initialize(mode: str = 'auto', coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               after_loss: str = 'Rerun the same command.') -> bool:
  """Calls ``jax.distributed.initialize`` where :func:`initialize_arguments` says so (before
  any JAX computation); returns whether it did. In a run of several processes, a lost process
  then ends this one within about :data:`HEARTBEAT_TIMEOUT_SECONDS` with
  :func:`lost_process_message` (``after_loss``: what is kept and how to go on) and
  :data:`LOST_PROCESS_EXIT_CODE`."""
  arguments = initialize_arguments(mode, coordinator_address, num_processes, process_id,
                                   os.environ, tpu_chips_present())
  if arguments is None:
    return False
  import jax
  jax.distributed.initialize(**arguments, heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS)
  try:  # where initialize() found the coordinator (auto-detected on a cluster)
    from jax._src import distributed as jax_distributed
    coordinator = jax_distributed.global_state.coordinator_address
  except (ImportError, AttributeError):
    coordinator = arguments.get('coordinator_address')
  if jax.process_count() > 1:
    _run.update(process_id=jax.process_index(), num_processes=jax.process_count(),
                coordinator=coordinator, after_loss=after_loss)
    _end_cleanly_on_abort()
  return True


def lost_process_message(process_id: int, num_processes: int, coordinator_gone: bool,
                         after_loss: str) -> str:
  """The line a process prints when the run lost another process and it stops too."""
  if coordinator_gone:
    lost = 'the coordinator, process 0, is gone (killed, crashed or unreachable)'
  else:
    lost = ("another process of the run was lost (killed, crashed, failed or unreachable: JAX's "
            'line above names it, its own log says why)')
  return f'effnet_jax: process {process_id} of {num_processes} stopped: {lost}. {after_loss}'


def reachable(address: str | None, timeout_seconds: float = 1.0) -> bool:
  """Whether something accepts TCP connections at ``address`` (HOST:PORT)."""
  if not address:
    return True  # unknown: assume so
  host, _, port = address.rpartition(':')
  try:
    with socket.create_connection((host.strip('[]'), int(port)), timeout=timeout_seconds):
      return True
  except (OSError, ValueError):
    return False


def _flush() -> None:
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass


def _on_abort(signum: int) -> None:
  """SIGABRT in a multi-process run: JAX's coordination client ending the process after the run
  lost a process (its LOG(FATAL) line is above). Says so on one line, then exits."""
  del signum
  coordinator_gone = _run['process_id'] != 0 and not reachable(_run['coordinator'])
  _flush()
  message = lost_process_message(_run['process_id'], _run['num_processes'], coordinator_gone,
                                 _run['after_loss'])
  os.write(2, f'{message}\n'.encode())
  os._exit(LOST_PROCESS_EXIT_CODE)


def _end_cleanly_on_abort() -> None:
  """Installs :func:`_on_abort` for SIGABRT at the C level: Python's own signal handlers run
  later, in the main thread, which the abort does not wait for. Replaces faulthandler's
  report for SIGABRT."""
  try:
    libc = ctypes.CDLL(None)
    libc.signal.argtypes = (ctypes.c_int, _SIGNAL_HANDLER)
    libc.signal.restype = ctypes.c_void_p
  except (OSError, AttributeError):  # no C library to ask: JAX's abort stays as it is
    return
  _run['handler'] = _SIGNAL_HANDLER(_on_abort)  # (kept: C holds the only other reference)
  libc.signal(signal.SIGABRT, _run['handler'])


def leave(code: int) -> None:
  """In a multi-process run, ends this process now with ``code`` (after an error it has
  reported), skipping JAX's shutdown barrier at exit: that barrier waits for every process,
  while the others wait for this one in a collective. They stop when it is gone. No-op in a
  single-process run."""
  if _run:
    _flush()
    os._exit(code)


@contextlib.contextmanager
def leave_on_crash():
  """Around an entry point: an exception escaping it in a multi-process run ends the process
  (:func:`leave` with 1, after the traceback). A failed collective or barrier (JAX's runtime
  error) most likely means another process is gone: the coordination service says so within
  :data:`HEARTBEAT_TIMEOUT_SECONDS`, and the process stops with the clearer
  :func:`lost_process_message` instead; it is given twice that. Exits (SystemExit) pass."""
  try:
    yield
  except Exception as error:
    if not _run:
      raise
    import jax
    if isinstance(error, jax.errors.JaxRuntimeError):
      time.sleep(2 * HEARTBEAT_TIMEOUT_SECONDS)
    traceback.print_exception(error)
    leave(1)


def all_processes(flag: bool) -> bool:
  """Whether ``flag`` holds on every process (a decision every process must take alike, e.g.
  which checkpoint step restored); the flag itself in a single-process run."""
  import jax
  if jax.process_count() == 1:
    return flag
  import numpy as np
  from jax.experimental import multihost_utils
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))
