"""The package's layering: what each lower layer may import from effnet_jax.

Every module of a layer is parsed with ``ast`` and each import in it (at module level or inside
a function) is checked against the table below, so an import running up the layers fails here
even where it is only reached at call time.
"""
import ast
import os
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'effnet_jax')

# layer (a package under effnet_jax/ or a top-level module) -> the effnet_jax modules its code
# may import (a name allows the module and everything under it).
ALLOWED = {
    'models': ('effnet_jax.models', 'effnet_jax.impls'),
    'data': ('effnet_jax.data', 'effnet_jax.pixel_limit', 'effnet_jax.impls'),
    'impls.py': (),
    'checkpoints.py': (),
    'pretrained.py': ('effnet_jax.models', 'effnet_jax.checkpoints', 'effnet_jax.hub'),
    # released weights by name: fetched, then converted by the converter
    'hub.py': ('effnet_jax.models', 'effnet_jax.checkpoints', 'effnet_jax.tools.convert'),
    # the train step and the pieces the config configures: below the config and the builders
    'train/step.py': ('effnet_jax.models', 'effnet_jax.data.device_augment', 'effnet_jax.data.mix',
                      'effnet_jax.train.ema'),
    'train/optim.py': (),
    'train/curriculum.py': (),
    'train/ema.py': (),
    'train/metrics.py': (),
    'train/preemption.py': (),
    # the schema: the dataclasses its sections configure, nothing that builds or runs
    'config.py': ('effnet_jax.models', 'effnet_jax.data.config', 'effnet_jax.train.curriculum',
                  'effnet_jax.train.optim', 'effnet_jax.train.step'),
}

# Everything else of effnet_jax (the builders and the loop, the tools, the analyses, the entry
# points) sits above every layer of the table: an import not listed for a layer is an error.


def modules(layer: str) -> list[str]:
  path = os.path.join(PACKAGE, layer)
  if os.path.isfile(path):
    return [path]
  return sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                for name in names if name.endswith('.py'))


def module_name(path: str) -> str:
  relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len('.py')].split(os.sep)
  return '.'.join(relative[:-1] if relative[-1] == '__init__' else relative)


def imported(path: str) -> list[tuple[int, str]]:
  """``[(line, module)]`` of every import in ``path``: ``from X import y`` imports X (but
  ``from effnet_jax import y`` imports effnet_jax.y); relative imports are resolved."""
  tree = ast.parse(open(path).read(), path)
  package = module_name(path)
  if not path.endswith('__init__.py'):
    package = package.rpartition('.')[0]
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')
        parts = parts[:len(parts) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      for alias in node.names:  # ``from X import m`` of a module m imports X.m
        found.append((node.lineno, f'{base}.{alias.name}' if base == 'effnet_jax' or
                      is_module(f'{base}.{alias.name}') else base))
  return found


def is_module(name: str) -> bool:
  path = os.path.join(os.path.dirname(PACKAGE), *name.split('.'))
  return os.path.isfile(path + '.py') or os.path.isdir(path)


def under(module: str, prefix: str) -> bool:
  return module == prefix or module.startswith(prefix + '.')


def violations(layer: str) -> list[str]:
  own = module_name(os.path.join(PACKAGE, layer)) if layer.endswith('.py') else None
  bad = []
  for path in modules(layer):
    for line, name in imported(path):
      if not under(name, 'effnet_jax') or name == 'effnet_jax' or (own and under(name, own)):
        continue
      allowed = any(under(name, a) for a in ALLOWED[layer])
      if not allowed:
        bad.append((os.path.relpath(path, os.path.dirname(PACKAGE)), line, name))
  return [f'{path}:{line} imports {name}' for path, line, name in sorted(set(bad))]


@pytest.mark.parametrize('layer', sorted(ALLOWED))
def test_a_layer_imports_nothing_above_it(layer):
  assert modules(layer), f'no modules in effnet_jax/{layer}'
  assert violations(layer) == []


def test_the_check_sees_imports_inside_functions(tmp_path, monkeypatch):
  """An import at call time is found like one at module level (the check is not vacuous)."""
  package = tmp_path / 'effnet_jax'
  (package / 'models').mkdir(parents=True)
  (package / 'models' / 'pretrained.py').write_text(
      'from effnet_jax.models.registry import build_model\n\n'
      'def load(path):\n'
      '  from effnet_jax.train import checkpoint as ckpt_lib\n'
      '  from ..config import set_overrides\n'
      '  import effnet_jax.tools.convert\n'
      '  from effnet_jax import pixel_limit, analysis\n')
  monkeypatch.setattr(sys.modules[__name__], 'PACKAGE', str(package))
  assert violations('models') == [
      'effnet_jax/models/pretrained.py:4 imports effnet_jax.train',
      'effnet_jax/models/pretrained.py:5 imports effnet_jax.config',
      'effnet_jax/models/pretrained.py:6 imports effnet_jax.tools.convert',
      'effnet_jax/models/pretrained.py:7 imports effnet_jax.analysis',
      'effnet_jax/models/pretrained.py:7 imports effnet_jax.pixel_limit',
  ]
