"""The EfficientNet-Lite family (Lite0-4): EfficientNet for mobile accelerators.

tensorflow/tpu lite/efficientnet_lite_builder.py: the EfficientNet-B0 blocks without
squeeze-excitation, ReLU6, and two scaling exceptions — the stem and head widths and the
repeats of the first and last stage are never scaled (``fix_stem_head``,
``fix_first_last_repeats``, which the EfficientNet resolve hooks honour). BN groups as V1.
"""
from __future__ import annotations

import dataclasses

from effnet_jax.models import efficientnet
from effnet_jax.models.efficientnet import V1_BASE, tf_crop_fraction
from effnet_jax.models.registry import ModelConfig, register, register_family

# EfficientNet-Lite: the same blocks without squeeze-excitation.
LITE_BASE = tuple(tuple(s.replace('_se0.25', '') for s in stage) for stage in V1_BASE)
# tensorflow/tpu efficientnet_lite_params.
LITE_PARAMS = {
    'lite0': (1.0, 1.0, 224, 0.2), 'lite1': (1.0, 1.1, 240, 0.2), 'lite2': (1.1, 1.2, 260, 0.3),
    'lite3': (1.2, 1.4, 280, 0.3), 'lite4': (1.4, 1.8, 300, 0.3),
}

FAMILY = register_family(dataclasses.replace(
    efficientnet.FAMILY, name='efficientnet_lite',
    weight_layouts={'timm': 'timm_efficientnet', 'tf': 'tensorflow', 'lukemelas': 'lukemelas'}))

for _variant, (_w, _d, _res, _drop) in LITE_PARAMS.items():
  register(ModelConfig(
      name=f'efficientnet_{_variant}', family='efficientnet_lite', stages=LITE_BASE,
      width_mult=_w, depth_mult=_d, fix_stem_head=True, fix_first_last_repeats=True,
      activation='relu6', bn_momentum=0.99, dropout_rate=_drop, drop_path_rate=0.2,
      image_size=_res, eval_image_size=_res, crop_fraction=tf_crop_fraction(_res),
      interpolation='bicubic', mean=(127 / 255,) * 3, std=(128 / 255,) * 3))
