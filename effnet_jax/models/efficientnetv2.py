"""The EfficientNetV2 family (S, M, L, XL and the B0-B3 scaled variants).

google/automl efficientnetv2/effnetv2_configs.py: Fused-MBConv early stages, MBConv later
(``effnet_jax.models.blocks``), the EfficientNet resolve hooks with V2's rounding (no 10 %
rule: ``round_limit=0``), BatchNorm groups of up to 8 devices.
"""
from __future__ import annotations

from effnet_jax.models import efficientnet, network
from effnet_jax.models.efficientnet import tf_crop_fraction
from effnet_jax.models.registry import Family, ModelConfig, register, register_family

# EfficientNetV2 (google/automl effnetv2_configs.py). S/M/L/XL block lists are already scaled.
V2_STAGES = {
    's': (('fu_r2_k3_s1_e1_c24',), ('fu_r4_k3_s2_e4_c48',), ('fu_r4_k3_s2_e4_c64',),
          ('ir_r6_k3_s2_e4_c128_se0.25',), ('ir_r9_k3_s1_e6_c160_se0.25',),
          ('ir_r15_k3_s2_e6_c256_se0.25',)),
    'm': (('fu_r3_k3_s1_e1_c24',), ('fu_r5_k3_s2_e4_c48',), ('fu_r5_k3_s2_e4_c80',),
          ('ir_r7_k3_s2_e4_c160_se0.25',), ('ir_r14_k3_s1_e6_c176_se0.25',),
          ('ir_r18_k3_s2_e6_c304_se0.25',), ('ir_r5_k3_s1_e6_c512_se0.25',)),
    'l': (('fu_r4_k3_s1_e1_c32',), ('fu_r7_k3_s2_e4_c64',), ('fu_r7_k3_s2_e4_c96',),
          ('ir_r10_k3_s2_e4_c192_se0.25',), ('ir_r19_k3_s1_e6_c224_se0.25',),
          ('ir_r25_k3_s2_e6_c384_se0.25',), ('ir_r7_k3_s1_e6_c640_se0.25',)),
    'xl': (('fu_r4_k3_s1_e1_c32',), ('fu_r8_k3_s2_e4_c64',), ('fu_r8_k3_s2_e4_c96',),
           ('ir_r16_k3_s2_e4_c192_se0.25',), ('ir_r24_k3_s1_e6_c256_se0.25',),
           ('ir_r32_k3_s2_e6_c512_se0.25',), ('ir_r8_k3_s1_e6_c640_se0.25',)),
}
V2_BASE = (('fu_r1_k3_s1_e1_c16',), ('fu_r2_k3_s2_e4_c32',), ('fu_r2_k3_s2_e4_c48',),
           ('ir_r3_k3_s2_e4_c96_se0.25',), ('ir_r5_k3_s1_e6_c112_se0.25',),
           ('ir_r8_k3_s2_e6_c192_se0.25',))
V2_STEM = {'s': 24, 'm': 24, 'l': 32, 'xl': 32}

# (width, depth, train size, eval size, dropout) — automl efficientnetv2_params.
V2_PARAMS = {
    's': (1.0, 1.0, 300, 384, 0.2), 'm': (1.0, 1.0, 384, 480, 0.3),
    'l': (1.0, 1.0, 384, 480, 0.4), 'xl': (1.0, 1.0, 384, 512, 0.4),
    'b0': (1.0, 1.0, 192, 224, 0.2), 'b1': (1.0, 1.1, 192, 240, 0.2),
    'b2': (1.1, 1.2, 208, 260, 0.3), 'b3': (1.2, 1.4, 240, 300, 0.3),
}


def automl_bn_group_size(num_devices: int) -> int:
  """google/automl: BN statistics over groups of min(8, n) devices."""
  return min(8, num_devices)


FAMILY = register_family(Family(
    name='efficientnetv2', build=network.build, bn_group_size=automl_bn_group_size,
    weight_layouts={'timm': 'timm_efficientnet', 'keras': 'keras_efficientnetv2',
                    'tf': 'tensorflow'},
    **efficientnet.RESOLVE_HOOKS))

for _variant, (_w, _d, _train, _eval, _drop) in V2_PARAMS.items():
  _big = _variant in V2_STAGES
  # S/M/L/XL: official (x - 128) / 128 inputs, bilinear, no eval crop at >= 320 px ("squash").
  # B0-B3: the V1 pipeline (bicubic, ImageNet mean/std, crop padding 32).
  _squash = _big and _eval >= 320
  register(ModelConfig(
      name=f'efficientnetv2_{_variant}', family='efficientnetv2',
      stages=V2_STAGES[_variant] if _big else V2_BASE, width_mult=_w, depth_mult=_d,
      stem_channels=V2_STEM.get(_variant, 32), head_channels=1280, round_limit=0.0,
      bn_momentum=0.9,  # released code; the paper states 0.99 (override bn_momentum)
      dropout_rate=_drop, drop_path_rate=0.2, image_size=_train, eval_image_size=_eval,
      crop_fraction=1.0 if _squash else tf_crop_fraction(_eval),
      crop_mode='squash' if _squash else 'center',
      interpolation='bilinear' if _big else 'bicubic',
      **(dict(mean=(128 / 255,) * 3, std=(128 / 255,) * 3) if _big else {})))
