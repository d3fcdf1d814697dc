"""Rounding rules, block strings and compound scaling (docs/reference.md, 'Architectures')."""
import math
from fractions import Fraction

import pytest

from effnet_jax.models import arch, get_model_config


def stage_table(name):
  """(stem, [(out, repeats) per stage], head) of a registered model."""
  config = get_model_config(name)
  stages = [(blocks[-1].out_channels, len(blocks)) for blocks in config.resolved_arch()]
  return config.resolved_stem_channels(), stages, config.resolved_head_channels()


# docs/reference.md, the EfficientNet V1 and V2 width tables: stem, stage out x repeats, head.
V1_TABLE = {
    'b0': (32, '16x1 24x2 40x2 80x3 112x3 192x4 320x1', 1280),
    'b1': (32, '16x2 24x3 40x3 80x4 112x4 192x5 320x2', 1280),
    'b2': (32, '16x2 24x3 48x3 88x4 120x4 208x5 352x2', 1408),
    'b3': (40, '24x2 32x3 48x3 96x5 136x5 232x6 384x2', 1536),
    'b4': (48, '24x2 32x4 56x4 112x6 160x6 272x8 448x2', 1792),
    'b5': (48, '24x3 40x5 64x5 128x7 176x7 304x9 512x3', 2048),
    'b6': (56, '32x3 40x6 72x6 144x8 200x8 344x11 576x3', 2304),
    'b7': (64, '32x4 48x7 80x7 160x10 224x10 384x13 640x4', 2560),
}
V2_TABLE = {
    's': (24, '24x2 48x4 64x4 128x6 160x9 256x15', 1280),
    'm': (24, '24x3 48x5 80x5 160x7 176x14 304x18 512x5', 1280),
    'l': (32, '32x4 64x7 96x7 192x10 224x19 384x25 640x7', 1280),
    'xl': (32, '32x4 64x8 96x8 192x16 256x24 512x32 640x8', 1280),
    'b0': (32, '16x1 32x2 48x2 96x3 112x5 192x8', 1280),
    'b1': (32, '16x2 32x3 48x3 96x4 112x6 192x9', 1280),
    'b2': (32, '16x2 32x3 56x3 104x4 120x6 208x10', 1408),
    'b3': (40, '16x2 40x3 56x3 112x5 136x7 232x12', 1536),
}


def parse_table(row):
  stem, stages, head = row
  return stem, [tuple(int(v) for v in s.split('x')) for s in stages.split()], head


@pytest.mark.parametrize('variant', sorted(V1_TABLE))
def test_v1_stage_widths_and_repeats(variant):
  assert stage_table(f'efficientnet_{variant}') == parse_table(V1_TABLE[variant])


@pytest.mark.parametrize('variant', sorted(V2_TABLE))
def test_v2_stage_widths_and_repeats(variant):
  assert stage_table(f'efficientnetv2_{variant}') == parse_table(V2_TABLE[variant])


# docs/reference.md, the ReXNet width table: block output widths per width multiplier.
REXNET_WIDTHS = {
    1.0: (32, '16 27 38 50 61 72 84 95 106 117 128 140 151 162 174 185', 1280),
    1.3: (42, '21 35 50 65 79 94 109 123 138 152 167 182 196 211 226 240', 1664),
    1.5: (48, '24 41 58 75 92 108 125 142 159 176 193 210 226 243 260 277', 1920),
    2.0: (64, '32 54 77 100 122 144 167 190 212 234 257 280 302 324 347 370', 2560),
    3.0: (96, '48 82 116 149 183 217 250 284 318 352 386 419 453 487 520 554', 3840),
    0.9: (32, '16 26 36 46 56 67 77 87 97 107 117 127 138 148 158 168', 1152),
}


@pytest.mark.parametrize('width', sorted(REXNET_WIDTHS))
def test_rexnet_linear_channels_round_half_even(width):
  config = get_model_config('rexnet_100', width_mult=width)
  blocks = [b for stage in config.resolved_arch() for b in stage]
  stem, outs, head = REXNET_WIDTHS[width]
  assert config.resolved_stem_channels() == stem
  assert [b.out_channels for b in blocks] == [int(c) for c in outs.split()]
  assert config.resolved_head_channels() == head


def test_rexnet_block_table():
  """ReXNet-1.0x blocks (docs/reference.md, ReXNet): strides, expansion, SE width C // 12, shortcut."""
  blocks = [b for s in get_model_config('rexnet_100').resolved_arch() for b in s]
  assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
  assert [b.mid_channels for b in blocks][:6] == [32, 96, 162, 228, 300, 366]
  assert [b.se_channels for b in blocks] == [0, 0, 0, 19, 25, 30, 36, 42, 47, 53, 58, 64, 70,
                                             75, 81, 87]
  # Partial residual on every stride-1 block except block 0 (32 -> 16 narrows).
  assert [b.skip for b in blocks] == [b.stride == 1 and i > 0 for i, b in enumerate(blocks)]


def test_round_filters_v1_ten_percent_rule_vs_v2():
  # V2-B3 stage 1: 16 * 1.2 = 19.2 rounds to 16; V1's 10 % rule bumps it to 24.
  assert arch.round_filters(16, 1.2, round_limit=0.0) == 16
  assert arch.round_filters(16, 1.2, round_limit=0.9) == 24
  assert arch.round_filters(112, 1.1) == 120  # 123.2 -> 120 (within 10 %)
  assert arch.round_filters(32, 1.1) == 32
  assert arch.round_filters(1280, 1.1) == 1408
  for c in (16, 24, 32, 40, 80, 112, 192, 320, 1280):
    assert arch.round_filters(c, 1.0) == c  # identity at width 1
  assert arch.round_filters(3, 0.5) == 8  # min_depth defaults to the divisor


def test_round_repeats_is_ceil():
  assert arch.round_repeats(1, 1.1) == 2
  assert arch.round_repeats(4, 3.1) == 13
  assert arch.round_repeats(3, 2.2) == 7
  assert arch.round_repeats(3, 1.0) == 3
  assert arch.round_repeats(3, 0.5) == 2


def test_decode_block_string():
  args = arch.decode_block_string('ir_r2_k3_s2_e6_c24_se0.25')
  assert args == arch.BlockArgs('ir', 2, 3, 2, 6, 24, Fraction(1, 4), True)
  assert args.to_string() == 'ir_r2_k3_s2_e6_c24_se0.25'
  fused = arch.decode_block_string('fu_r4_k3_s2_e4_c48_noskip')
  assert (fused.block_type, fused.se_ratio, fused.skip) == ('fu', None, False)
  assert fused.to_string() == 'fu_r4_k3_s2_e4_c48_noskip'
  rex = arch.decode_block_string('lb_r1_k3_s1_e6_c61_se1/12')
  assert rex.se_ratio == Fraction(1, 12) and rex.to_string() == 'lb_r1_k3_s1_e6_c61_se1/12'


@pytest.mark.parametrize('bad, message', [
    ('xx_r1_k3_s1_e1_c16', 'unknown block type'),
    ('ir_r1_k3_s1_e1', 'missing tokens'),
    ('ir_r1_k3_s1_e1_c16_q7', 'cannot parse token'),
    ('ir_r1_k3_s1_e1_c16_r2', 'given twice'),
    ('ir_r0_k3_s1_e1_c16', '>= 1'),
    ('ir_rx_k3_s1_e1_c16', "cannot parse token 'rx'"),
    ('ir_r1_k3_s1_e1_c16_se0.2.5', '(?i)invalid literal'),
    ('ir_r1_k3_s1_e1_c16_se2', 'se ratio'),
])
def test_decode_block_string_errors(bad, message):
  with pytest.raises(ValueError, match=message):
    arch.decode_block_string(bad)


def test_decode_arch_expands_stages_and_drop_path_is_linear_in_block_index():
  stages = arch.decode_arch([['ir_r1_k3_s1_e1_c16_se0.25'], ['ir_r2_k3_s2_e6_c24_se0.25']],
                            stem_channels=32, depth_mult=1.5, drop_path_rate=0.2)
  blocks = [b for s in stages for b in s]
  assert [(b.in_channels, b.out_channels, b.stride) for b in blocks] == [
      (32, 16, 1), (16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 24, 1)]
  assert [b.skip for b in blocks] == [False, True, False, True, True]
  assert [b.se_channels for b in blocks] == [8, 4, 4, 6, 6]  # int(block input * 0.25)
  assert [b.drop_path_rate for b in blocks] == pytest.approx([0.2 * i / 5 for i in range(5)])


def test_lite_keeps_stem_head_and_first_last_repeats():
  config = get_model_config('efficientnet_lite4')  # width 1.4, depth 1.8
  stages = config.resolved_arch()
  assert config.resolved_stem_channels() == 32 and config.resolved_head_channels() == 1280
  assert len(stages[0]) == 1 and len(stages[-1]) == 1
  assert [len(s) for s in stages[1:-1]] == [math.ceil(1.8 * r) for r in (2, 2, 3, 3, 4)]
  assert not any(b.se_channels for s in stages for b in s)


def test_compound_coefficients():
  w, d, r = arch.compound_coefficients(1.0)
  assert (w, d, r) == pytest.approx((1.1, 1.2, 1.15))
  assert d * w ** 2 * r ** 2 == pytest.approx(1.92, abs=0.01)  # α·β²·γ² ≈ 2
  w, d, r = arch.compound_coefficients(-2.0)
  assert (w, d, r) == pytest.approx((1.1 ** -2, 1.2 ** -2, 1.15 ** -2))


@pytest.mark.parametrize('phi', [-2.0, -1.0, 0.0, 1.5])
def test_compound_scaling_from_phi(phi):
  base = get_model_config('efficientnet_b0')
  scaled = get_model_config('efficientnet_b0', phi=phi)
  assert scaled.width_mult == pytest.approx(1.1 ** phi)
  assert scaled.depth_mult == pytest.approx(1.2 ** phi)
  assert scaled.image_size == round(224 * 1.15 ** phi)
  blocks = [b for s in scaled.resolved_arch() for b in s]
  base_blocks = [b for s in base.resolved_arch() for b in s]
  assert [len(s) for s in scaled.resolved_arch()] == [
      arch.round_repeats(r, 1.2 ** phi) for r in (1, 2, 2, 3, 3, 4, 1)]
  assert blocks[-1].out_channels == arch.round_filters(320, 1.1 ** phi)
  if phi < 0:
    assert len(blocks) <= len(base_blocks) and blocks[-1].out_channels < 320


def test_compound_scaling_with_explicit_constants_and_overrides():
  config = get_model_config('efficientnet_b0', phi=1, alpha=1.0, beta=2.0, gamma=1.0,
                            image_size=64)
  assert (config.width_mult, config.depth_mult, config.image_size) == (2.0, 1.0, 64)
  with pytest.raises(ValueError, match='without phi'):
    get_model_config('efficientnet_b0', alpha=1.3)
