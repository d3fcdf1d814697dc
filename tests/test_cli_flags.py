"""absl flags are process-global: two modules defining ``--workdir`` collide when one process (a
pytest worker) imports both. Only the command-line entry points define flags, and no test or
library module imports an entry point; their logic lives in importable library modules."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = {'effnet_jax.main', 'effnet_jax.evaluate', 'effnet_jax.tools.ablate'}


def _modules(*folders):
  for folder in folders:
    for base, _, names in os.walk(os.path.join(ROOT, folder)):
      for name in names:
        if name.endswith('.py'):
          path = os.path.join(base, name)
          module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
          yield module.removesuffix('.__init__'), ast.parse(open(path).read(), path)


def _at_import(tree):
  """The nodes a module runs when imported (function bodies excluded: a helper such as
  distributed.define_flags defines flags only when an entry point calls it)."""
  pending = list(ast.iter_child_nodes(tree))
  while pending:
    node = pending.pop()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      continue
    yield node
    pending.extend(ast.iter_child_nodes(node))


def _defines_flags(tree) -> bool:
  return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and (node.func.attr.startswith('DEFINE')
                  or node.func.attr in ('define_flags', 'define_config_flag'))
             for node in _at_import(tree))


def _imports(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      yield from (f'{node.module}.{alias.name}' for alias in node.names)


def test_only_entry_points_define_flags():
  defining = {module for module, tree in _modules('effnet_jax') if _defines_flags(tree)}
  assert defining == ENTRY_POINTS


def test_nothing_imports_an_entry_point():
  offenders = [(module, name) for module, tree in _modules('effnet_jax', 'tests', 'configs')
               for name in _imports(tree) if name in ENTRY_POINTS]
  assert not offenders, f'import the library module instead: {offenders}'
