"""Shared data for the input-pipeline tests: the embedded data set and tiny image folders."""
import os

import numpy as np
import pytest

from data_helpers import pixel_value, write_image


@pytest.fixture
def make_folder(tmp_path):
  """make_folder(name, counts) -> a folder with counts[c] constant PNG images in class c.

  Images are numbered over the whole folder (class order, then file order); image i has the
  grey level pixel_value(i), alternating grey, RGB and RGBA PNGs of varying sizes."""
  def make(name, counts, class_names=('ant', 'bee', 'cat')):
    root = tmp_path / name
    example_id = 0
    for class_name, count in zip(class_names, counts):
      os.makedirs(root / class_name)
      for index in range(count):
        channels = (1, 3, 4)[example_id % 3]
        shape = (20 + example_id % 5, 24 + example_id % 3, channels)
        array = np.full(shape, pixel_value(example_id), np.uint8)
        if channels == 4:
          array[..., 3] = 255
        write_image(root / class_name / f'{index:03d}.png', array, 'PNG')
        example_id += 1
    return str(root)
  return make
