"""The pixel limit on image decoding (``max_image_pixels``), and Pillow files opened under it.

A compressed file can claim a huge image in a few bytes: a 20000x20000 PNG of one colour is 48 kB
and decodes to 1.2 GB. The input pipelines, predict and prepare_data read the width and height
from an image's header first and treat an image of more than ``max_image_pixels`` pixels like an
unreadable file, before any pixel is decoded. The TensorFlow side (tf.data and predict, Pillow
reading the headers of the formats TensorFlow does not decode) is
``effnet_jax.data.preprocess.check_pixel_limit``; Pillow's (prepare_data) is :func:`open_image`
below.

Only the standard library here: the data package, predict and prepare_data's worker processes
(which must not load TensorFlow) all import this module.
"""
from __future__ import annotations

import re

# Pillow's own error threshold (twice its warning one): a 512 MiB RGB image, about 13,000 px
# square, far beyond any training photo.
MAX_IMAGE_PIXELS = 178_956_970
TOO_MANY_PIXELS = '{}x{} pixels, more than max_image_pixels={}'  # width, height, limit
_TOO_MANY_PIXELS = re.compile(re.escape(TOO_MANY_PIXELS).replace(r'\{\}', r'\d+'))


class TooManyPixels(ValueError):
  """An image whose header gives more than ``max_image_pixels`` pixels."""


def over_limit(message: str) -> str | None:
  """The :data:`TOO_MANY_PIXELS` sentence inside an error message (a TensorFlow error wraps it
  in its own text), or None where the error is another one."""
  found = _TOO_MANY_PIXELS.search(message)
  return found.group() if found else None


def open_image(file, max_image_pixels: int):
  """``PIL.Image.open(file)`` (a path or a binary file object), which reads only the header;
  :class:`TooManyPixels` for an image over the limit, before any pixel is decoded.

  Sets Pillow's own limit ``PIL.Image.MAX_IMAGE_PIXELS`` to None (off) for the process: Pillow
  checks inside ``Image.open``, so its exception (``DecompressionBombError``, not an ``OSError``)
  would come first, and only above twice its limit (a warning below that); this check replaces
  it."""
  from PIL import Image
  Image.MAX_IMAGE_PIXELS = None
  image = Image.open(file)
  if image.width * image.height > max_image_pixels:
    image.close()
    raise TooManyPixels(TOO_MANY_PIXELS.format(image.width, image.height, max_image_pixels))
  return image
