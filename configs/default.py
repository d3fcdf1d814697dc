"""The embedded default job: a compound-scaled EfficientNet on Fashion-MNIST, on a laptop CPU.

  python -m effnet_jax.main            # same as: --config configs/default.py --workdir workdirs/default

EfficientNet-B0 scaled down by compound coefficient phi = -10 (width 1.1^-10 = 0.39, depth
1.2^-10 = 0.16; 249k parameters), trained on the embedded data set (the real Fashion-MNIST from
the Debian package dataset-fashion-mnist, served through a local TFDS builder) upsampled to
40 px: at 28 px the stride-2 stem and first stride-2 stage leave a 7x7 map after three layers
and accuracy stalls near 88 %. AdamW with cosine decay, batch 128, 7.5 epochs, EMA evaluated
beside the raw weights.
Expected: >= 90 % test top-1 (the measured result and wall times: README.md and docs/training.md,
'The embedded default job').
"""
from effnet_jax.config import check_arg_keys, parse_config_arg
from effnet_jax.recipes import small_cpu


def get_config(arg=None):
  check_arg_keys(parse_config_arg(arg), {})  # takes no config argument
  # EfficientNet-B0 at 40 px, AdamW 0.008 per 256 (peak 0.004), cosine after a half-epoch warm-up,
  # EMA 0.999, batch 128; the embedded data set's CPU settings (effnet_jax/recipes.py)
  c = small_cpu('efficientnet_b0', image_size=40)
  c.model_overrides.phi = -10.0
  c.num_epochs = 7.5
  c.log_every_steps = 50
  c.eval_every_epochs = 3.75
  c.checkpoint_every_steps = 500
  return c
