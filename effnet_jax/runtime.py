"""Process set-up that must happen before JAX or TensorFlow load: a caching memory allocator
and XLA:CPU's vector width.

XLA:CPU allocates each execution's temporary buffer with ``posix_memalign`` from a worker
thread. glibc serves a request that big (hundreds of MB for a train step) from a fresh ``mmap``
and returns it with ``munmap`` after the step, so every step faults in the whole buffer as zeroed
pages again and the kernel's page-fault work rivals the step itself. tcmalloc keeps freed spans
(measurements: docs/training.md, 'The allocator'). ``python -m effnet_jax.main`` /
``effnet_jax.evaluate`` therefore
re-execute themselves once with tcmalloc preloaded when the library is installed (Debian/Ubuntu:
``libtcmalloc-minimal4``, which launch/setup.sh installs) and nothing else is preloaded.
``EFFNET_JAX_TCMALLOC=0`` turns this off; ``EFFNET_JAX_TCMALLOC=/path/lib.so`` picks the library.
"""
from __future__ import annotations

import ctypes.util
import glob
import os
import sys

_ENV = 'EFFNET_JAX_TCMALLOC'
_DONE = 'EFFNET_JAX_ALLOCATOR_SET'  # set in the re-executed process: never loop
_SEARCH = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib',
           '/usr/local/lib')


def find_tcmalloc() -> str | None:
  """Path of an installed tcmalloc shared library, or None."""
  choice = os.environ.get(_ENV, '')
  if choice and choice not in ('0', '1'):
    return choice if os.path.exists(choice) else None
  for name in ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4'):
    for directory in _SEARCH:
      path = os.path.join(directory, name)
      if os.path.exists(path):
        return path
  for stem in ('tcmalloc_minimal', 'tcmalloc'):
    found = ctypes.util.find_library(stem)
    if found:
      matches = [p for d in _SEARCH for p in glob.glob(os.path.join(d, found))]
      if matches:
        return matches[0]
  return None


def reexec_plan(environ: dict[str, str], platform: str = sys.platform) -> dict[str, str] | None:
  """The environment to re-execute with, or None to keep this process as it is."""
  if platform != 'linux' or environ.get(_ENV) == '0' or environ.get(_DONE):
    return None
  if environ.get('LD_PRELOAD'):  # the user chose what to preload (maybe tcmalloc already)
    return None
  library = find_tcmalloc()
  if library is None:
    return None
  env = dict(environ, LD_PRELOAD=library, **{_DONE: library})
  # tcmalloc reports allocations over 1 GiB on stderr; a big train step is no news.
  env.setdefault('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD', str(1 << 40))
  return env


def use_caching_allocator() -> None:
  """Re-execute this command with tcmalloc preloaded (see the module docstring); returns only
  when no re-execution is wanted or possible. Call it first thing, before jax is imported."""
  env = reexec_plan(dict(os.environ))
  if env is None or 'jax' in sys.modules:
    return
  argv = list(getattr(sys, 'orig_argv', []))
  if not argv:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
  except OSError:  # could not re-execute: carry on with the default allocator
    pass


_VECTOR_FLAG = '--xla_cpu_prefer_vector_width'
_TUNING_ENV = 'EFFNET_JAX_XLA_CPU_TUNING'


def cpu_has_avx512(cpuinfo: str = '/proc/cpuinfo') -> bool:
  try:
    with open(cpuinfo, encoding='utf-8', errors='replace') as f:
      for line in f:
        if line.startswith('flags'):
          return 'avx512f' in line.split()
  except OSError:
    pass
  return False


def xla_flags_plan(environ: dict[str, str], avx512: bool) -> str | None:
  """The XLA_FLAGS to set, or None to leave them: on a CPU with AVX-512, XLA:CPU's loops use
  512-bit vectors (XLA's default prefers 256). Its elementwise loops (BatchNorm, SiLU, the
  unrolled depthwise conv) then ran about 1.5x faster and the B0 eval step about 10 % faster
  on the 2-core AMD EPYC (Zen 4) VM (docs/performance.md). A user's own setting of the flag
  wins; ``EFFNET_JAX_XLA_CPU_TUNING=0`` turns this off."""
  flags = environ.get('XLA_FLAGS', '')
  if not avx512 or environ.get(_TUNING_ENV) == '0' or _VECTOR_FLAG in flags:
    return None
  return f'{flags} {_VECTOR_FLAG}=512'.strip()


def tune_xla_cpu() -> None:
  """Sets :func:`xla_flags_plan`'s flags in this process's environment. XLA reads XLA_FLAGS
  when JAX starts its first backend, so this must run before the first computation."""
  flags = xla_flags_plan(dict(os.environ), cpu_has_avx512())
  if flags is not None:
    os.environ['XLA_FLAGS'] = flags
