"""The EfficientNet family (V1: B0-B7, B8, L2) and the scaling rules of the EfficientNet families.

Blocks: MBConv (``effnet_jax.models.blocks``). Block tables and per-variant coefficients follow
the official code (tensorflow/tpu efficientnet_builder.py); the tables with their sources:
docs/reference.md, 'Architectures'. EfficientNet-Lite (``efficientnet_lite``) and EfficientNetV2
(``efficientnetv2``) reuse the resolve hooks defined here.
"""
from __future__ import annotations

from effnet_jax.models import arch as arch_lib
from effnet_jax.models import network
from effnet_jax.models.registry import Family, ModelConfig, register, register_family

# EfficientNet-B0 (tensorflow/tpu _DEFAULT_BLOCKS_ARGS), one stage per entry.
V1_BASE = (
    ('ir_r1_k3_s1_e1_c16_se0.25',),
    ('ir_r2_k3_s2_e6_c24_se0.25',),
    ('ir_r2_k5_s2_e6_c40_se0.25',),
    ('ir_r3_k3_s2_e6_c80_se0.25',),
    ('ir_r3_k5_s1_e6_c112_se0.25',),
    ('ir_r4_k5_s2_e6_c192_se0.25',),
    ('ir_r1_k3_s1_e6_c320_se0.25',),
)
# (width, depth, resolution, head dropout) — tensorflow/tpu efficientnet_params.
V1_PARAMS = {
    'b0': (1.0, 1.0, 224, 0.2), 'b1': (1.0, 1.1, 240, 0.2), 'b2': (1.1, 1.2, 260, 0.3),
    'b3': (1.2, 1.4, 300, 0.3), 'b4': (1.4, 1.8, 380, 0.4), 'b5': (1.6, 2.2, 456, 0.4),
    'b6': (1.8, 2.6, 528, 0.5), 'b7': (2.0, 3.1, 600, 0.5), 'b8': (2.2, 3.6, 672, 0.5),
    'l2': (4.3, 5.3, 800, 0.5),
}


def tf_crop_fraction(size: int) -> float:
  """TF 'crop_padding 32' eval crop: centre crop of S/(S+32) of the shorter side."""
  return size / (size + 32)


# The resolve hooks of the EfficientNet families: widths scaled by width_mult and rounded to
# multiples of 8 (round_limit: V1's 10 % rule, 0 for V2), repeats by ceil(depth_mult * r);
# fix_stem_head / fix_first_last_repeats (EfficientNet-Lite) keep those unscaled.

def stem_channels(config: ModelConfig) -> int:
  if config.fix_stem_head:
    return config.stem_channels
  return arch_lib.round_filters(config.stem_channels, config.width_mult,
                                round_limit=config.round_limit)


def head_channels(config: ModelConfig) -> int:
  if config.fix_stem_head:
    return config.head_channels
  return arch_lib.round_filters(config.head_channels, config.width_mult,
                                round_limit=config.round_limit)


def block_strings(config: ModelConfig) -> tuple[tuple[str, ...], ...]:
  return config.stages


def resolved_arch(config: ModelConfig) -> tuple[tuple[arch_lib.BlockSpec, ...], ...]:
  return arch_lib.decode_arch(
      config.block_strings(), config.resolved_stem_channels(), width_mult=config.width_mult,
      depth_mult=config.depth_mult, round_limit=config.round_limit,
      fix_first_last_repeats=config.fix_first_last_repeats,
      drop_path_rate=config.drop_path_rate)


def tpu_bn_group_size(num_devices: int) -> int:
  """tensorflow/tpu: BN statistics per core up to 8 cores, else groups of max(8, n // 8)."""
  return 1 if num_devices <= 8 else max(8, num_devices // 8)


RESOLVE_HOOKS = dict(stem_channels=stem_channels, head_channels=head_channels,
                     block_strings=block_strings, arch=resolved_arch,
                     feature_info=network.feature_levels)

FAMILY = register_family(Family(
    name='efficientnet', build=network.build, bn_group_size=tpu_bn_group_size,
    weight_layouts={'timm': 'timm_efficientnet', 'keras': 'keras_efficientnet',
                    'tf': 'tensorflow', 'lukemelas': 'lukemelas'},
    **RESOLVE_HOOKS))

for _variant, (_w, _d, _res, _drop) in V1_PARAMS.items():
  register(ModelConfig(
      name=f'efficientnet_{_variant}', family='efficientnet', stages=V1_BASE, width_mult=_w,
      depth_mult=_d, stem_channels=32, head_channels=1280, round_limit=0.9, bn_momentum=0.99,
      dropout_rate=_drop, drop_path_rate=0.2, image_size=_res, eval_image_size=_res,
      crop_fraction=tf_crop_fraction(_res), interpolation='bicubic'))
