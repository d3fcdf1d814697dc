"""The Swin Transformer family: window geometry, the size error, fine-tuning at another window
(bias tables resized), a train step of a model without BatchNorm. Parity with timm:
tests/tools/test_convert.py; counts and forward passes of the registered variants: test_zoo.py."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from effnet_jax.models import build_model, create_model, get_model_config, swin
from effnet_jax.models.utils import abstract_variables
from effnet_jax.pretrained import save_pretrained
from effnet_jax.train import finetune
from effnet_jax.train.builders import init_state
from effnet_jax.train.step import TrainStepConfig, global_batch, make_mesh, make_train_step

# A two-stage Swin small enough to compile in seconds: 32 px, patch 4 -> token grids 8 and 4.
TINY = dict(stem_channels=16, depths=(2, 2), num_heads=(1, 2), window_size=2, image_size=32,
            eval_image_size=32, num_classes=3)


def tiny(**overrides):
  return get_model_config('swin_tiny_patch4_window7_224', **{**TINY, **overrides})


def test_window_geometry():
  config = get_model_config('swin_tiny_patch4_window7_224')
  assert swin.stage_windows(config) == (7, 7, 7, 7)  # grids 56, 28, 14, 7: the last is the window
  # the original rule: a grid not larger than the window is the window (and does not shift)
  assert swin.stage_windows(tiny(window_size=8)) == (8, 4)
  index = swin.relative_position_index(2)
  assert index.shape == (4, 4) and index.max() == 8 and set(np.diag(index)) == {4}  # (0, 0)
  mask = swin.shift_mask(4, 2, 1)  # 4 windows of 4 tokens; only the first window is one region
  assert mask.shape == (4, 4, 4) and not mask[0].any() and mask[3].min() == swin.MASKED
  assert swin.working_sizes(4, (7, 7, 7, 7)) == [224, 448, 672, 896]
  assert swin.working_sizes(4, (12, 12, 12, 12)) == [384, 768, 1152, 1536]


def test_an_input_size_the_windows_do_not_tile_is_a_clear_error():
  model = create_model('swin_tiny_patch4_window7_224', num_classes=5)
  variables = abstract_variables(model, 32)  # initialises at any size (the params do not depend)
  apply = lambda size: jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                                      jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  assert apply(448).shape == (1, 5)
  with pytest.raises(ValueError, match=r'swin_tiny_patch4_window7_224 \(patch 4, windows '
                                       r'\[7, 7, 7, 7\].*cannot take 256x256 images: stage 1 has '
                                       r'a token grid of 64x64, not a multiple of its window 7. '
                                       r'Sizes that work: 224, 448, 672, 896'):
    apply(256)
  with pytest.raises(ValueError, match=r'windows \[12, 12, 12, 7\].*cannot take 224x224'):
    abstract_variables(create_model('swin_base_patch4_window7_224', window_size=12), 224)
  with pytest.raises(ValueError, match='no width/depth multipliers.*stem_channels'):
    create_model('swin_tiny_patch4_window7_224', phi=1.0)  # not silently the unscaled model


def test_bias_table_resizing():
  rng = np.random.default_rng(0)
  table = rng.normal(size=(13 * 13, 4)).astype(np.float32)
  np.testing.assert_array_equal(swin.resize_bias_table(table, 7), table)  # same window: as is
  np.testing.assert_allclose(swin.bicubic_matrix(13, 13), np.eye(13), atol=1e-12)
  resized = swin.resize_bias_table(table, 12)  # swin_base at 384 px
  assert resized.shape == (23 * 23, 4) and resized.dtype == np.float32
  # a table that is constant along one offset axis stays so (the rows of the map sum to 1)
  ramp = np.repeat(np.arange(13.0), 13)[:, None]
  assert np.ptp(swin.resize_bias_table(ramp, 12).reshape(23, 23), axis=1).max() < 1e-9


def test_finetuning_at_another_window_resizes_the_bias_tables(tmp_path):
  weights = tiny()
  variables = jax.jit(build_model(weights).init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  path = save_pretrained(str(tmp_path / 'w'), 'swin_tiny_patch4_window7_224', variables, TINY)
  run = tiny(window_size=4, num_classes=5)  # windows (4, 4): tables of 7x7 offsets, not 3x3
  fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                 abstract_variables(build_model(run), 32))
  loaded, reinitialised, _ = finetune.load_initial_variables(path, run, fresh)
  assert reinitialised == ['params/classifier/bias', 'params/classifier/kernel']
  block = ('stages_1', 'blocks_1', 'attn', 'relative_position_bias_table')
  original, table = variables['params'], loaded['params']
  for key in block:
    original, table = original[key], table[key]
  assert original.shape == (9, 2) and table.shape == (49, 2)
  np.testing.assert_allclose(table, swin.resize_bias_table(np.asarray(original), 4))
  np.testing.assert_array_equal(loaded['params']['stages_1']['blocks_1']['fc1']['kernel'],
                                variables['params']['stages_1']['blocks_1']['fc1']['kernel'])
  assert finetune.architecture(run) == finetune.architecture(weights)
  with pytest.raises(ValueError, match='num_heads'):
    finetune.check_architecture(tiny(num_heads=(2, 2)), weights, path)


def test_a_model_without_batchnorm_trains():
  model = build_model(tiny(drop_path_rate=0.1))
  mesh = make_mesh(1, jax.devices()[:1])
  tx = optax.adamw(1e-3)
  state = jax.jit(lambda: init_state(model, tx, 32, 0, ema=True),
                  out_shardings=NamedSharding(mesh, P()))()
  assert state.batch_stats == {} and state.ema_batch_stats == {}
  before = jax.device_get(state.params)
  step = make_train_step(mesh, model, tx, lambda s: 1e-3,
                         TrainStepConfig(num_classes=3, ema_decay=0.9))
  rs = np.random.RandomState(0)
  batch = {'images': rs.randn(4, 32, 32, 3).astype(np.float32),
           'labels': rs.randint(0, 3, 4).astype(np.int32)}
  state, metrics = step(state, global_batch(mesh, batch), jax.random.key(0))
  assert np.isfinite(float(metrics['loss'])) and float(metrics['grad_norm']) > 0
  after = jax.device_get(state.params)
  table = ('stages_0', 'blocks_1', 'attn', 'relative_position_bias_table')
  old, new = before, after
  for key in table:
    old, new = old[key], new[key]
  assert not np.array_equal(old, new)  # the bias tables are trained too
  assert int(state.step) == 1 and state.batch_stats == {}


def test_a_run_builds_swin_for_its_own_image_size():
  """A training config's image size reaches the model, so its windows follow from it: the
  recipe on the embedded data trains at 32 px with window 4 (token grids 8, 4, 2, 1)."""
  from effnet_jax.recipes import swin_config
  from effnet_jax.train import builders
  mcfg = builders.model_config(swin_config('variant=tiny,data=embedded'), num_classes=10)
  assert (mcfg.image_size, mcfg.eval_image_size, swin.stage_windows(mcfg)) == (32, 32,
                                                                              (4, 4, 2, 1))
