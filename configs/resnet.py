"""ResNet-50 and ResNet-50-D, the "Bag of Tricks" recipe (He et al. 2019) with cosine decay and
label smoothing; ``variant`` picks the network.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/resnet.py:variant=50 --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
SGD Nesterov 0.1 per 256 at batch 1024, 5 warm-up epochs, cosine, 120 epochs, label smoothing.
Expected (Bag of Tricks, Tables 5 and 6):

  variant  model      Expected top-1
  50       resnet50   76.2 % (Table 5: step decay, no label smoothing; not run with both)
  50d      resnet50d  78.3 % (Table 6: + cosine decay + label smoothing)

Not reproduced: the paper's colour jitter and PCA lighting noise and its zero-initialised last
BN scale of each block. Other depths train with the same recipe: ``--config.model=resnet101``.
Progressive learning (the EfficientNetV2 code's 4 stages from 128 px) with ``progressive=true``:
  python -m effnet_jax.main --config configs/resnet.py:variant=50,progressive=true --workdir WORKDIR

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe):
  python -m effnet_jax.main --config configs/resnet.py:variant=50,data=embedded --workdir WORKDIR

Config argument: variant (required: 50, 50d), progressive=false (default) | true,
data=imagenet (default) | embedded. The recipe: effnet_jax/recipes.py (resnet).
"""
from effnet_jax.recipes import resnet_config


def get_config(arg=None):
  return resnet_config(arg)
