"""Test images: random and numbered (constant grey level recoverable after preprocessing)."""
import io

import numpy as np
from PIL import Image


def random_image(shape, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def pixel_value(example_id: int) -> int:
  """The constant grey level of the numbered test image (ids 0..25)."""
  return 10 * example_id + 5


def example_ids(images: np.ndarray, mean=0.5, std=0.5) -> np.ndarray:
  """The ids of numbered images normalised with (mean, std) (centre pixel, channel 0)."""
  center = images[:, images.shape[1] // 2, images.shape[2] // 2, 0]
  return np.rint(((center * std + mean) * 255 - 5) / 10).astype(int)


def encode_image(array: np.ndarray, image_format: str) -> bytes:
  """PNG / JPEG bytes of a uint8 [H, W, C] array (C = 1, 3 or 4)."""
  mode = {1: 'L', 3: 'RGB', 4: 'RGBA'}[array.shape[-1]]
  buffer = io.BytesIO()
  Image.fromarray(array[..., 0] if mode == 'L' else array, mode).save(buffer, image_format)
  return buffer.getvalue()


def write_image(path, array: np.ndarray, image_format: str) -> None:
  with open(path, 'wb') as f:
    f.write(encode_image(array, image_format))
