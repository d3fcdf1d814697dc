"""MobileNetV2 0.5x … 1.4x, the release recipe (tensorflow/models slim README flags); ``variant``
picks the width (x100).

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/mobilenetv2.py:variant=100 --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
TF RMSProp 0.12 per 256 at batch 768, x 0.98 every 2.5 epochs, ~420 epochs, EMA 0.9999.
Expected: the top-1 of the variant's row (paper Table 4 for 1.0x and 1.4x, the slim release
table for 0.5x and 0.75x):

  variant  model            Expected top-1
  050      mobilenetv2_050  65.4 %
  075      mobilenetv2_075  69.8 %
  100      mobilenetv2_100  72.0 %
  140      mobilenetv2_140  74.7 %

Not reproduced: slim's Inception colour distortion. Progressive learning with
``progressive=true`` (as configs/resnet.py).

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/mobilenetv2.py:variant=100,data=embedded --workdir WORKDIR

Config argument: variant (required: 050, 075, 100, 140), progressive=false (default) | true,
data=imagenet (default) | embedded. The recipe: effnet_jax/recipes.py (mobilenetv2).
"""
from effnet_jax.recipes import mobilenetv2_config


def get_config(arg=None):
  return mobilenetv2_config(arg)
