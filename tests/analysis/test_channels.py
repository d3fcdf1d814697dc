"""ReXNet's rank study and channel schedules."""
import numpy as np
import pytest

from effnet_jax.analysis import channels
from effnet_jax.models import arch, get_model_config, rexnet


def test_numerical_rank_of_known_matrices():
  rng = np.random.default_rng(0)
  low = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 12))
  assert channels.numerical_rank(low, 1e-6) == 3
  assert channels.numerical_rank(np.eye(5), 1e-6) == 5
  assert channels.numerical_rank(np.diag([1.0, 0.5, 1e-3]), 1e-2) == 2
  assert channels.numerical_rank(np.zeros((4, 4)), 1e-6) == 0
  assert channels.effective_rank(np.eye(6)) == pytest.approx(6)
  assert 1 < channels.effective_rank(np.diag([1.0, 0.5, 0.1])) < 3


def test_rank_study_linear_layers_cannot_expand_rank():
  rows = channels.rank_study(['linear', 'relu'], [0.5, 2, 4], d_in=8, samples_per_output=2,
                             trials=2, rtol=1e-4)
  linear = {r['expansion']: r['rank_ratio'] for r in rows if r['nonlinearity'] == 'linear'}
  assert linear == {0.5: 1.0, 2: 0.5, 4: 0.25}
  relu = {r['expansion']: r['rank_ratio'] for r in rows if r['nonlinearity'] == 'relu'}
  assert relu[4] > linear[4]
  assert all(0 < r['effective_rank_ratio'] <= 1 for r in rows)
  with pytest.raises(ValueError, match='unknown nonlinearity'):
    channels.rank_study(['gelu2'], [1], 4, 2, 1, 1e-3)


@pytest.mark.parametrize('width', [0.5, 1.0, 2.0])
def test_linear_schedule_is_rexnets_own(width):
  layers = rexnet.rexnet_layers(1.0)
  a, b = channels.rexnet_linear(width, sum(layers))
  widths = channels.channel_widths(channels.schedule_positions('linear', layers), a, b)
  expected = get_model_config('rexnet_100', width_mult=width).block_strings()
  assert rexnet.linear_bottleneck_stages(widths, layers) == expected


def test_piecewise_and_stagewise_positions():
  layers = [1, 2, 2]
  assert channels.schedule_positions('stagewise', layers) == [0, 2, 2, 4, 4]
  piecewise = channels.schedule_positions('piecewise', layers, knot=0.5, slopes=(0.5, 2.0))
  assert piecewise == [0, 0.5, 1.0, 3.0, 5.0]
  with pytest.raises(ValueError, match='unknown channel schedule'):
    channels.schedule_positions('cubic', layers)
  with pytest.raises(ValueError, match='one width per block'):
    rexnet.linear_bottleneck_stages([16, 24], [1, 2, 2, 3, 3, 5])


def test_custom_stages_build_a_rexnet_at_the_matched_macs():
  model = channels.ChannelModel(0.5, 0.4, 16, 10)  # 8 blocks
  target = model.macs()
  b = channels.rexnet_linear(0.5, sum(model.layers))[1]
  stages = channels.schedule_stages(model, 'stagewise', b, target, 0.5, (0.5, 1.5), iterations=4)
  widths = [arch.decode_block_string(s).out_channels for stage in stages for s in stage]
  assert model.layers == [1, 1, 1, 2, 2, 2] and widths[3] == widths[4]  # one width per stage
  assert model.macs(stages) == pytest.approx(target, rel=0.2)
