"""ReXNet (clovaai/rexnet rexnetv1.py): linear channel configuration, widths 1.0x-3.0x.

The block strings are generated per width by ``arch.rexnet_stages``; the original uses
symmetric (PyTorch) padding, PyTorch BN constants and no stochastic depth.
"""
from __future__ import annotations

from effnet_jax.models.registry import ModelConfig, register

for _width in (1.0, 1.3, 1.5, 2.0, 3.0):
  register(ModelConfig(
      name=f'rexnet_{round(_width * 100)}', family='rexnet', width_mult=_width,
      stem_channels=32, head_channels=1280, activation='silu', padding='symmetric',
      bn_momentum=0.9, bn_eps=1e-5, dropout_rate=0.2, drop_path_rate=0.0,
      train_size=224, eval_size=224, crop_fraction=0.875, interpolation='bicubic'))
