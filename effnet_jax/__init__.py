"""EfficientNet, EfficientNetV2 and ReXNet in JAX/Flax (README.md).

``effnet_jax.create_model(name, pretrained=True)``, ``load_pretrained(spec)`` and
``list_pretrained()`` are loaded on first use, so importing the package (or one of its entry
points) loads no JAX before :mod:`effnet_jax.runtime` has set up the process.
"""

from effnet_jax import runtime as _runtime

_runtime.tune_xla_cpu()  # before JAX starts a backend (XLA reads its flags then)

# The one place the version is written: pyproject.toml reads it from here.
__version__ = '0.1.0'

_LAZY = {'create_model': 'effnet_jax.pretrained', 'load_pretrained': 'effnet_jax.pretrained',
         'save_pretrained': 'effnet_jax.pretrained', 'list_pretrained': 'effnet_jax.hub'}


def __getattr__(name):
  if name in _LAZY:
    import importlib
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(list(globals()) + list(_LAZY))
