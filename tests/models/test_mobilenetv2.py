"""MobileNetV2's width rules (the head never narrower than 1280) and compound scaling, resolved
from the configs alone (the parameter counts against timm are in test_zoo.py)."""
from effnet_jax.models import get_model_config


def widths(name, **overrides):
  config = get_model_config(name, **overrides)
  arch = config.resolved_arch()
  return (config.resolved_stem_channels(), [stage[-1].out_channels for stage in arch],
          [len(stage) for stage in arch], config.resolved_head_channels())


def test_width_multiplier_rounds_every_width_and_never_narrows_the_head():
  assert widths('mobilenetv2_100') == (32, [16, 24, 32, 64, 96, 160, 320],
                                       [1, 2, 3, 4, 3, 3, 1], 1280)
  assert widths('mobilenetv2_050') == (16, [8, 16, 16, 32, 48, 80, 160],
                                       [1, 2, 3, 4, 3, 3, 1], 1280)
  assert widths('mobilenetv2_140') == (48, [24, 32, 48, 88, 136, 224, 448],
                                       [1, 2, 3, 4, 3, 3, 1], 1792)


def test_depth_variants_keep_stem_head_and_the_outer_stages():
  stem, _, repeats, head = widths('mobilenetv2_120d')
  assert (stem, repeats, head) == (32, [1, 3, 5, 6, 5, 5, 1], 1280)


def test_compound_scaling_applies_efficientnets_rule():
  config = get_model_config('mobilenetv2_100', phi=1.0)
  assert (round(config.width_mult, 6), round(config.depth_mult, 6), config.image_size) == (
      1.1, 1.2, 258)
  stem, outs, repeats, head = widths('mobilenetv2_100', phi=1.0)
  assert (stem, head) == (32, 1408)  # 35.2 -> 32 (within 10 %); 1280 x 1.1 = 1408
  assert repeats == [2, 3, 4, 5, 4, 4, 2]  # ceil(1.2 r)
  assert outs == [16, 24, 32, 72, 104, 176, 352]
