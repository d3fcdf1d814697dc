"""Implementation choices that depend on the backend: ``'auto'`` picks one by the default backend.

Several ops have two exact implementations of which one is faster on the CPU and the other on
accelerators (the models' ``conv_impl`` and ``depthwise_impl``, device RandAugment's ``impl``).
Both the models and the data package resolve them here, below either of them.
"""
from __future__ import annotations

import jax


def resolve_impl(impl: str, cpu: str, other: str, choices: tuple[str, ...], name: str) -> str:
  """``impl``, with ``auto`` resolved by the default backend (``cpu`` on the CPU, else
  ``other``); a value outside ``choices`` is a ``ValueError`` naming the option ``name``."""
  if impl == 'auto':
    return cpu if jax.default_backend() == 'cpu' else other
  if impl not in choices:
    raise ValueError(f'unknown {name} {impl!r}; expected one of {choices}')
  return impl
