"""The built wheel, installed in a fresh venv and run outside the checkout: its files, its declared
dependencies, every console command, the shipped configs, a prediction.

Offline: the wheel is built with this venv's setuptools (no build isolation) from a copy of the
sources; the fresh venv sees this venv's packages through a .pth file instead of installing them
again, and the wheel goes in with --no-deps.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from effnet_jax import runtime

pytestmark = pytest.mark.xdist_group('package')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('pyproject.toml', 'README.md', 'LICENSE', 'effnet_jax', 'configs')
# Each console command, the exit status of its --help (absl's exits with 1, argparse's with 0) and
# what the help shows: flags, among them one no other command has (ablate: its --config's help).
HELP = {
    'effnet-train': (1, ['--config', '--workdir', '--allow_changes', '--num_processes']),
    'effnet-evaluate': (1, ['--workdir', '--image_sizes', '--best']),
    'effnet-predict': (0, ['--weights', '--top_k', '--max_image_pixels']),
    'effnet-convert': (0, ['--source', '--arch', '--class_names']),
    'effnet-export': (0, ['--weights', '--output', '--image_size']),
    'effnet-benchmark': (0, ['--vs_timm', '--compare_depthwise']),
    'effnet-benchmark-input': (0, ['--generate', '--folder']),
    'effnet-summary': (0, ['--model', '--all']),
    'effnet-ablate': (1, ['--config', '--workdir', 'An ablation config']),
    'effnet-prepare-data': (0, ['--input', '--max_side']),
}


def checkout_files(folder: str) -> set[str]:
  """The files under ``folder`` of the checkout, relative to it (no bytecode)."""
  found = set()
  for directory, subdirs, files in os.walk(os.path.join(ROOT, folder)):
    subdirs[:] = [d for d in subdirs if d != '__pycache__']
    found.update(os.path.relpath(os.path.join(directory, f), os.path.join(ROOT, folder))
                 for f in files if not f.endswith('.pyc'))
  return found


def run(command: list[str], cwd: str, check: bool = True) -> subprocess.CompletedProcess:
  """``command`` on the CPU, as a user starts it: without the checkout on the path (no
  PYTHONPATH) and with no allocator chosen (effnet_jax/runtime.py)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('PYTHONPATH', 'LD_PRELOAD', 'EFFNET_JAX_TCMALLOC',
                      'EFFNET_JAX_ALLOCATOR_SET')}
  env['JAX_PLATFORMS'] = 'cpu'
  done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  if check:
    assert done.returncode == 0, done.stderr
  return done


@pytest.fixture(scope='session')  # once per worker (a module fixture is rebuilt)
def wheel(tmp_path_factory) -> str:
  """The wheel, built from a copy of the sources (the build writes into the tree it builds)."""
  tmp = tmp_path_factory.mktemp('build')
  source = tmp / 'source'
  for name in SOURCES:
    if os.path.isdir(os.path.join(ROOT, name)):
      shutil.copytree(os.path.join(ROOT, name), source / name,
                      ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    else:
      source.mkdir(exist_ok=True)
      shutil.copy(os.path.join(ROOT, name), source)
  run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
       '-q', '-w', str(tmp / 'dist'), str(source)], cwd=str(tmp))
  [built] = os.listdir(tmp / 'dist')
  return str(tmp / 'dist' / built)


@pytest.fixture(scope='session')  # once per worker (a module fixture is rebuilt)
def venv(wheel, tmp_path_factory) -> types.SimpleNamespace:
  """A fresh venv with the wheel installed, over this venv's packages; ``cwd``: an empty folder
  to run the commands in, ``tmp``: one for their other files."""
  tmp = tmp_path_factory.mktemp('venv')
  root = tmp / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(root)], check=True)
  python = str(root / 'bin' / 'python')
  site_packages = run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                      cwd=str(tmp)).stdout.strip()
  ours = sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})
  with open(os.path.join(site_packages, 'parent_venv.pth'), 'w', encoding='utf-8') as f:
    # addsitedir, not a bare path: the .pth files there (namespace packages, ...) take effect
    f.write('import site; ' + '; '.join(f'site.addsitedir({p!r})' for p in ours) + '\n')
  run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', wheel], cwd=str(tmp))
  (tmp / 'cwd').mkdir()
  return types.SimpleNamespace(python=python, bin=str(root / 'bin'), root=str(root),
                               site_packages=site_packages, cwd=str(tmp / 'cwd'), tmp=str(tmp))


def test_the_wheel_holds_every_module_config_and_data_file(wheel):
  with zipfile.ZipFile(wheel) as archive:
    names = set(archive.namelist())
    metadata = archive.read('effnet_jax-0.1.0.dist-info/METADATA').decode()
    entry_points = archive.read('effnet_jax-0.1.0.dist-info/entry_points.txt').decode()
  expected = ({f'effnet_jax/{name}' for name in checkout_files('effnet_jax')} |
              {f'effnet_jax/configs/{name}' for name in checkout_files('configs')})
  assert 'effnet_jax/py.typed' in expected and 'effnet_jax/configs/default.py' in expected
  shipped = {name for name in names if '.dist-info/' not in name}
  assert sorted(expected - shipped) == [] and sorted(shipped - expected) == []
  assert 'effnet_jax-0.1.0.dist-info/licenses/LICENSE' in names
  assert 'License-Expression: Apache-2.0' in metadata
  assert 'Requires-Python: >=3.11' in metadata
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    scripts = tomllib.load(f)['project']['scripts']
  assert set(scripts) == set(HELP)
  assert all(f'{name} = {target}' in entry_points for name, target in scripts.items())


def names(requirements: list[str]) -> set[str]:
  """The normalized project names of requirement strings (``etils[epath]>=1`` -> ``etils``)."""
  return {re.sub(r'[-_.]+', '-', re.match(r'[A-Za-z0-9_.-]+', r)[0]).lower()
          for r in requirements}


def test_the_pinned_requirements_hold_every_declared_dependency():
  """requirements.txt (with the test extra) and requirements-interop.txt pin what pyproject.toml
  declares, so an exact reproduction installs everything."""
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    project = tomllib.load(f)['project']
  pinned = {}
  for name in ('requirements.txt', 'requirements-interop.txt'):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
      pinned[name] = names([line for line in f.read().splitlines()
                            if line.strip() and not line.startswith('#')])
  extras = project['optional-dependencies']
  assert names(project['dependencies'] + extras['test']) <= pinned['requirements.txt']
  assert names(extras['interop']) <= pinned['requirements-interop.txt']


def installs(venv, requirement: str) -> list[str]:
  """What pip would install, offline, for ``requirement`` beside what is installed already."""
  report = os.path.join(venv.tmp, 'report.json')
  run([venv.python, '-m', 'pip', 'install', '--dry-run', '--no-index', '-q', '--report', report,
       requirement], cwd=venv.cwd)
  with open(report, encoding='utf-8') as f:
    return [item['metadata']['name'] for item in json.load(f)['install']]


def test_the_declared_dependencies_are_installed(venv, wheel):
  """Every requirement of the package and of its test extra (and of its interop extra where
  requirements-interop.txt is installed) is met by this venv's packages, bounds included."""
  assert installs(venv, f'{wheel}[test]') == []
  if importlib.util.find_spec('torch') is not None:
    assert installs(venv, f'{wheel}[interop]') == []


def test_the_package_is_the_installed_one(venv):
  done = run([venv.python, '-c', 'import effnet_jax, importlib.metadata as m; '
              'from effnet_jax.models import create_model; create_model("efficientnet_b0"); '
              'print(effnet_jax.__file__); print(effnet_jax.__version__, m.version("effnet_jax"))'],
             cwd=venv.cwd)
  where, versions = done.stdout.splitlines()[:2]
  assert where.startswith(venv.root + os.sep), where
  assert versions == '0.1.0 0.1.0'


@pytest.mark.parametrize('command', sorted(HELP))
def test_every_command_shows_its_help(venv, command):
  status, flags = HELP[command]
  done = run([os.path.join(venv.bin, command), '--help'], cwd=venv.cwd, check=False)
  assert done.returncode == status, done.stderr
  assert 'Traceback' not in done.stderr
  assert all(flag in done.stdout for flag in flags), done.stdout


def test_train_reads_the_shipped_configs_with_tcmalloc(venv):
  """``--config configs/...`` names the config shipped in the package when the working directory
  has no configs/; the config file runs in the process re-executed with tcmalloc (before jax
  loads) where the library is installed."""
  shipped = os.path.join(venv.site_packages, 'effnet_jax', 'configs')
  done = run([os.path.join(venv.bin, 'effnet-train'), '--config',
              'configs/efficientnet.py:variant=b9'], cwd=venv.cwd, check=False)
  assert done.returncode == 2
  assert done.stderr.startswith(f"effnet_jax: error: {shipped}/efficientnet.py: config argument "
                                "variant='b9'"), done.stderr
  probe = os.path.join(venv.tmp, 'probe.py')  # a config file that says what it runs in
  with open(probe, 'w', encoding='utf-8') as f:
    f.write('import os\nprint("allocator", os.environ.get("EFFNET_JAX_ALLOCATOR_SET"))\n')
  done = run([os.path.join(venv.bin, 'effnet-train'), '--config', probe], cwd=venv.cwd,
             check=False)
  assert done.returncode == 2 and 'defines no get_config' in done.stderr, done.stderr
  assert done.stdout.split() == ['allocator', str(runtime.find_tcmalloc())]


def test_predict_with_a_tiny_model(venv, tiny_pretrained, tmp_path):
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'])
  image = str(tmp_path / 'image.png')
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)).save(image)
  done = run([os.path.join(venv.bin, 'effnet-predict'), '--weights', weights, '--top_k', '2',
              image], cwd=venv.cwd)
  lines = done.stdout.splitlines()
  assert lines[0] == image and len(lines) == 3
  assert {line.split()[2] for line in lines[1:]} <= {'ant', 'bee', 'cat'}
