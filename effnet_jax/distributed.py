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
"""
from __future__ import annotations

import glob
import os
from typing import Mapping

MODES = ('auto', 'on', 'off')
_GOOGLE_PCI_VENDOR = '0x1ae0'  # TPU chips on a Cloud TPU VM


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
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Calls ``jax.distributed.initialize`` where :func:`initialize_arguments` says so (before
  any JAX computation); returns whether it did."""
  arguments = initialize_arguments(mode, coordinator_address, num_processes, process_id,
                                   os.environ, tpu_chips_present())
  if arguments is None:
    return False
  import jax
  jax.distributed.initialize(**arguments)
  return True


def all_processes(flag: bool) -> bool:
  """Whether ``flag`` holds on every process (a decision every process must take alike, e.g.
  which checkpoint step restored); the flag itself in a single-process run."""
  import jax
  if jax.process_count() == 1:
    return flag
  import numpy as np
  from jax.experimental import multihost_utils
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))
