"""EfficientNet-B0 … B7, the official tensorflow/tpu recipe (AutoAugment); ``variant`` picks the
model.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnet.py:variant=b0 --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Batch 2048 for 350 epochs as released (the paper's 4096: --config.batch_size=4096).
Expected: the top-1 of the variant's row (EMA weights; paper Table 2 / official AutoAugment
checkpoint):

  variant  model            Expected top-1
  b0       efficientnet_b0  77.1 %
  b1       efficientnet_b1  79.1 %
  b2       efficientnet_b2  80.1 %
  b3       efficientnet_b3  81.6 %
  b4       efficientnet_b4  82.9 %
  b5       efficientnet_b5  83.6 %
  b6       efficientnet_b6  84.0 %
  b7       efficientnet_b7  84.3 %

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/efficientnet.py:variant=b0,data=embedded \\
      --workdir WORKDIR

Config argument: variant (required: b0 … b7), data=imagenet (default) | embedded. The recipe:
effnet_jax/recipes.py (efficientnet_v1).
"""
from effnet_jax.recipes import efficientnet_config


def get_config(arg=None):
  return efficientnet_config(arg)
