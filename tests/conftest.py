"""Test-suite set-up: CPU only, quiet TensorFlow, float32 matmuls at full precision."""
import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # noqa: E402  (after the environment above)

jax.config.update('jax_default_matmul_precision', 'highest')
