"""EMA decay (TF num_updates warm-up) and the moving-average update."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effnet_jax.train.ema import ema_decay, ema_update


@pytest.mark.parametrize('step, expected', [
    (0, 1 / 10), (1, 2 / 11), (10, 11 / 20), (1000, 1001 / 1010), (1_000_000, 0.9999)])
def test_ema_decay_with_num_updates_warmup(step, expected):
  assert float(ema_decay(step, 0.9999)) == pytest.approx(expected, rel=1e-6)


def test_ema_decay_without_warmup_and_under_jit():
  assert float(ema_decay(0, 0.9999, warmup=False)) == pytest.approx(0.9999)
  traced = jax.jit(lambda s: ema_decay(s, 0.9999))(jnp.asarray(10, jnp.int32))
  assert traced.dtype == jnp.float32 and float(traced) == pytest.approx(0.55)


def test_ema_update_arithmetic_and_dtypes():
  ema = {'params': {'kernel': jnp.array([1.0, 2.0]), 'half': jnp.array([4.0], jnp.bfloat16)},
         'batch_stats': {'mean': jnp.array([0.0, -1.0])}}
  new = {'params': {'kernel': jnp.array([3.0, 0.0]), 'half': jnp.array([0.0], jnp.bfloat16)},
         'batch_stats': {'mean': jnp.array([10.0, 1.0])}}
  out = ema_update(ema, new, ema_decay(1, 0.9999))  # decay 2/11
  d = 2 / 11
  np.testing.assert_allclose(out['params']['kernel'], [d * 1 + (1 - d) * 3, d * 2], rtol=1e-6)
  np.testing.assert_allclose(out['batch_stats']['mean'], [(1 - d) * 10, -d + (1 - d)], rtol=1e-6)
  assert out['params']['half'].dtype == jnp.bfloat16
  np.testing.assert_allclose(float(out['params']['half'][0]), 4 * d, rtol=1e-2)
  assert jax.tree.map(lambda x: x.dtype, out) == jax.tree.map(lambda x: x.dtype, ema)
