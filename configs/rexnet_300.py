"""ReXNet-3.0x, the clovaai/rexnet recipe (timm train.py settings).

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/rexnet_300.py --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Expected: 82.8 % top-1 (ReXNet README), SGD Nesterov lr 0.5 at batch 512, cosine, 400 epochs.
Not reproduced from the original command: timm's random erasing (p 0.2) and RandAugment's
per-op magnitude noise; our RandAugment is the TF one at magnitude 9.

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/rexnet_300.py:data=embedded --workdir WORKDIR
"""
from effnet_jax.recipes import rexnet


def get_config(arg=None):
  return rexnet('rexnet_300', arg)
