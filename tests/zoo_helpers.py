"""Each registered model's parameter count and MACs, traced once per test session.

Tracing a model abstractly takes 1-3 s (the largest: efficientnet_l2), and the zoo tests and the
docs/models.md test need the same numbers for every model: the first pytest-xdist worker to ask
for a model computes them (``summary.model_numbers``), the others read them (``built_once``)."""
from effnet_jax.tools import summary
from tests.conftest import built_once


def zoo_numbers(name: str) -> tuple[int, int]:
  """``summary.model_numbers(name)``: (parameters, MACs at the eval size), once per session."""
  params, macs = built_once(f'zoo-numbers-{name}', lambda _: summary.model_numbers(name))
  return params, macs
