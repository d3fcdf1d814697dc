"""Each registered model's parameter count and MACs, traced once per test session.

Tracing a model abstractly takes 1-3 s (the largest: efficientnet_l2), and the zoo tests and the
docs/models.md test need the same numbers for every model: the first pytest-xdist worker to ask
for a model computes them (``summary.model_numbers``) and leaves them in the session's data
directory; the others read them."""
import json
import os

from effnet_jax.tools import summary


def zoo_numbers(name: str) -> tuple[int, int]:
  """``summary.model_numbers(name)``: (parameters, MACs at the eval size), once per session."""
  directory = os.path.join(os.environ['EFFNET_JAX_TEST_DATA'], 'zoo_numbers')
  path = os.path.join(directory, f'{name}.json')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      params, macs = json.load(f)
    return params, macs
  params, macs = summary.model_numbers(name)
  os.makedirs(directory, exist_ok=True)
  temporary = f'{path}.{os.getpid()}'
  with open(temporary, 'w', encoding='utf-8') as f:
    json.dump([params, macs], f)
  os.replace(temporary, path)  # atomic: a reader sees the whole file or none
  return params, macs
