"""ReXNet-1.0x … 3.0x, the clovaai/rexnet recipe (timm train.py settings); ``variant`` picks the
width (x100).

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/rexnet.py:variant=100 --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
SGD Nesterov lr 0.5 at batch 512, cosine, 400 epochs.
Expected: the top-1 of the variant's row (ReXNet README):

  variant  model       Expected top-1
  100      rexnet_100  77.9 %
  130      rexnet_130  79.5 %
  150      rexnet_150  80.3 %
  200      rexnet_200  81.6 %
  300      rexnet_300  82.8 %

Not reproduced from the original command: timm's random erasing (p 0.2) and RandAugment's
per-op magnitude noise; our RandAugment is the TF one at magnitude 9.

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/rexnet.py:variant=100,data=embedded --workdir WORKDIR

Config argument: variant (required: 100, 130, 150, 200, 300), data=imagenet (default) | embedded.
The recipe: effnet_jax/recipes.py (rexnet).
"""
from effnet_jax.recipes import rexnet_config


def get_config(arg=None):
  return rexnet_config(arg)
