"""Fused-MBConv placement."""
import pytest

from effnet_jax.analysis.fused import fused_placement, placement_name
from effnet_jax.models import get_model_config

V1 = get_model_config('efficientnet_b0').stages
V2 = get_model_config('efficientnetv2_b0').stages


def test_the_first_k_stages_become_fused_and_the_rest_mbconv():
  fused = fused_placement(V1, 3)
  assert fused[:3] == tuple(tuple('fu' + s[2:] for s in stage) for stage in V1[:3])
  assert fused[3:] == V1[3:]
  assert fused_placement(V1, 0) == V1
  assert fused_placement(V2, 0)[0] == ('ir_r1_k3_s1_e1_c16',)  # V2's fused stages undone
  assert all(s.startswith('fu_') for stage in fused_placement(V1, 7) for s in stage)
  assert [placement_name(k, 7) for k in (0, 3, 7)] == ['none', 'stages1-3', 'all']


def test_bad_placements_are_errors():
  with pytest.raises(ValueError, match='7 stages'):
    fused_placement(V1, 8)
  rexnet = get_model_config('rexnet_100').block_strings()
  with pytest.raises(ValueError, match='only MBConv'):
    fused_placement(rexnet, 1)
