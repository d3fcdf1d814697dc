"""The caching-allocator re-execution of effnet_jax.main (effnet_jax/runtime.py)."""
import os
import subprocess
import sys

from effnet_jax import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plan_preloads_tcmalloc_once(monkeypatch):
  monkeypatch.setattr(runtime, 'find_tcmalloc', lambda: '/lib/libtcmalloc_minimal.so.4')
  env = runtime.reexec_plan({'PATH': '/bin'}, platform='linux')
  assert env['LD_PRELOAD'] == '/lib/libtcmalloc_minimal.so.4' and env['PATH'] == '/bin'
  assert runtime.reexec_plan(env, platform='linux') is None  # the re-executed process stays


def test_plan_respects_the_user(monkeypatch):
  monkeypatch.setattr(runtime, 'find_tcmalloc', lambda: '/lib/libtcmalloc_minimal.so.4')
  assert runtime.reexec_plan({'EFFNET_JAX_TCMALLOC': '0'}, platform='linux') is None
  assert runtime.reexec_plan({'LD_PRELOAD': '/lib/libjemalloc.so.2'}, platform='linux') is None
  assert runtime.reexec_plan({}, platform='darwin') is None
  monkeypatch.setattr(runtime, 'find_tcmalloc', lambda: None)
  assert runtime.reexec_plan({}, platform='linux') is None  # not installed: carry on


def test_explicit_library_path(monkeypatch, tmp_path):
  library = tmp_path / 'libtcmalloc.so'
  library.write_bytes(b'')
  monkeypatch.setenv('EFFNET_JAX_TCMALLOC', str(library))
  assert runtime.find_tcmalloc() == str(library)
  monkeypatch.setenv('EFFNET_JAX_TCMALLOC', str(tmp_path / 'missing.so'))
  assert runtime.find_tcmalloc() is None


def test_main_runs_with_tcmalloc_when_installed():
  """The command line keeps its arguments through the re-execution, and the process that does
  the work has tcmalloc mapped (where the library is installed, as launch/setup.sh does)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('LD_PRELOAD', 'EFFNET_JAX_TCMALLOC', 'EFFNET_JAX_ALLOCATOR_SET')}
  code = ('import sys; from effnet_jax.runtime import use_caching_allocator; '
          'use_caching_allocator(); print(sys.argv[1:]); '
          "print(any('tcmalloc' in line for line in open('/proc/self/maps')))")
  out = subprocess.run([sys.executable, '-c', code, 'a', '--b=c'], cwd=REPO, env=env,
                       capture_output=True, text=True, check=True).stdout.split('\n')
  assert out[0] == "['a', '--b=c']"
  assert out[1] == str(runtime.find_tcmalloc() is not None and sys.platform == 'linux')


def test_xla_cpu_vector_width_on_avx512_unless_the_user_chose():
  plan = runtime.xla_flags_plan
  assert plan({}, avx512=True) == '--xla_cpu_prefer_vector_width=512'
  assert plan({'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}, avx512=True) == (
      '--xla_force_host_platform_device_count=4 --xla_cpu_prefer_vector_width=512')
  assert plan({}, avx512=False) is None
  assert plan({'XLA_FLAGS': '--xla_cpu_prefer_vector_width=256'}, avx512=True) is None
  assert plan({'EFFNET_JAX_XLA_CPU_TUNING': '0'}, avx512=True) is None


def test_avx512_is_read_from_cpuinfo(tmp_path):
  info = tmp_path / 'cpuinfo'
  info.write_text('processor : 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n')
  assert runtime.cpu_has_avx512(str(info))
  info.write_text('processor : 0\nflags\t\t: fpu sse avx2\n')
  assert not runtime.cpu_has_avx512(str(info))
  assert not runtime.cpu_has_avx512(str(tmp_path / 'missing'))
