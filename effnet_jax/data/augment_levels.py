"""What RandAugment and AutoAugment share between the tf.data ops (augment.py) and the JAX ops of
the train step (device_augment.py): the level scale, the fill value, the per-policy pixel
constants and the coefficients of the geometric transforms. Plain Python, no array library, so
that the train step imports no TensorFlow."""
from __future__ import annotations

import dataclasses

MAX_LEVEL = 10.0
FILL = 128


@dataclasses.dataclass(frozen=True)
class Constants:
  """Pixel sizes at level 10 (of ~224 px images; not rescaled with the image size)."""
  translate: float
  cutout: float  # half-side of the cutout square


RANDAUGMENT_CONSTANTS = Constants(translate=100.0, cutout=40.0)
AUTOAUGMENT_CONSTANTS = Constants(translate=250.0, cutout=100.0)


def rotation_coefficients(cos, sin, height, width) -> list:
  """Transform coefficients ``[a0, a1, a2, b0, b1, b2]`` (output pixel (x, y) takes the input at
  ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``) of a rotation about the image centre (any array
  library)."""
  center_y, center_x = (height - 1.0) / 2.0, (width - 1.0) / 2.0
  return [cos, -sin, center_x - cos * center_x + sin * center_y,
          sin, cos, center_y - sin * center_x - cos * center_y]


# The coefficients of the other geometric ops.
SHEAR_TRANSLATE = {
    'shear_x': lambda v: [1.0, v, 0.0, 0.0, 1.0, 0.0],
    'shear_y': lambda v: [1.0, 0.0, 0.0, v, 1.0, 0.0],
    'translate_x': lambda v: [1.0, 0.0, v, 0.0, 1.0, 0.0],
    'translate_y': lambda v: [1.0, 0.0, 0.0, 0.0, 1.0, v],
}
