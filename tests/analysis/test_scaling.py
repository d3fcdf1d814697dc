"""Compound-coefficient grid, MACs matching and the scaled variants."""
import dataclasses

import pytest

from effnet_jax.analysis import scaling
from effnet_jax.models import compound_coefficients


def test_grid_keeps_the_triples_on_the_constraint():
  triples = scaling.constrained_grid([1, 1.2, 1.4], [1, 1.1, 1.2], [1, 1.15, 1.3], 2.0, 0.15)
  assert (1.2, 1.1, 1.15) in triples  # the paper's
  assert len(triples) == 6
  for a, b, g in triples:
    assert min(a, b, g) >= 1 and abs(a * b * b * g * g - 2) <= 0.15


def test_grid_rejects_bad_coefficients_and_empty_results():
  with pytest.raises(ValueError, match='>= 1'):
    scaling.constrained_grid([0.9, 1.2], [1.1], [1.15])
  with pytest.raises(ValueError, match='within 0.01 of 2'):
    scaling.constrained_grid([1.0], [1.0], [1.0], 2.0, 0.01)


def test_match_flops_bisects_a_step_function():
  cost = lambda x: 8 * int(x)  # rounding makes MACs a staircase
  assert cost(scaling.match_flops(cost, 40, 1.0, 16.0)) == 40
  assert cost(scaling.match_flops(cost, 43, 1.0, 16.0, iterations=3)) in (40, 48)
  assert scaling.match_flops(lambda r: r * r, 50, 4, 64, integer=True) == 7
  with pytest.raises(ValueError, match='widen the search range'):
    scaling.match_flops(cost, 1000, 1.0, 16.0)


def test_compound_uses_the_registry_rule_and_single_dimensions_match_its_macs():
  base = scaling.base_scale('efficientnet_b0', -12.0, 24)
  w, d, r = compound_coefficients(-12.0)
  assert (base.width_mult, base.depth_mult, base.image_size) == (pytest.approx(w),
                                                                pytest.approx(d), 24)
  target = scaling.compound('efficientnet_b0', base, 2.0, 1.2, 1.1, 1.15)
  assert target.image_size == 32 and target.width_mult == pytest.approx(base.width_mult * 1.21)
  goal = scaling.macs('efficientnet_b0', target, 10)
  resolution = scaling.single_dimension('efficientnet_b0', base, 'resolution', goal, 10)
  assert resolution.width_mult == base.width_mult and resolution.image_size > 24
  miss = lambda size: abs(scaling.macs('efficientnet_b0', dataclasses.replace(
      base, image_size=size), 10) - goal)
  size = resolution.image_size  # the nearest MACs (a staircase: 31 px 0.67 M, 33 px 1.28 M)
  assert miss(size) <= min(miss(size - 1), miss(size + 2))
  with pytest.raises(ValueError, match='unknown dimension'):
    scaling.single_dimension('efficientnet_b0', base, 'height', goal, 10)
