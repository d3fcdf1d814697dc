"""The console commands of the installed package (pyproject.toml, ``[project.scripts]``).

``effnet-train ARGS`` is ``python -m effnet_jax.main ARGS``, and so on: each command runs its
module as ``__main__``, as ``-m`` does, so both take one path. Importing the module instead and
calling a function of it would not do: the commands that preload tcmalloc must do so before jax
loads (effnet_jax/runtime.py), which their imports do, and absl's ``--help`` lists the flags and
the docstring of the ``__main__`` module.
"""
from __future__ import annotations

import runpy
from typing import Callable


def _command(module: str) -> Callable[[], None]:
  def run() -> None:
    runpy.run_module(module, run_name='__main__', alter_sys=True)

  run.__doc__ = f'``python -m {module}``'
  return run


train = _command('effnet_jax.main')
evaluate = _command('effnet_jax.evaluate')
predict = _command('effnet_jax.predict')
convert = _command('effnet_jax.tools.convert')
export = _command('effnet_jax.tools.export')
benchmark = _command('effnet_jax.tools.benchmark')
benchmark_input = _command('effnet_jax.tools.benchmark_input')
summary = _command('effnet_jax.tools.summary')
ablate = _command('effnet_jax.tools.ablate')
prepare_data = _command('effnet_jax.tools.prepare_data')
