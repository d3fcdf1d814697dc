"""EfficientNet-B3, the official tensorflow/tpu recipe (AutoAugment).

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnet_b3.py --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Expected: 81.6 % top-1 (EMA weights; paper Table 2 / official AutoAugment checkpoint), batch
2048 for 350 epochs as released (the paper's 4096: --config.batch_size=4096).

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/efficientnet_b3.py:data=embedded --workdir WORKDIR
"""
from effnet_jax.recipes import efficientnet_v1


def get_config(arg=None):
  return efficientnet_v1('efficientnet_b3', arg)
