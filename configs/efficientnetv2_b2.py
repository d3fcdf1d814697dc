"""EfficientNetV2-B2 with progressive learning, the google/automl recipe as released.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnetv2_b2.py --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Expected: 80.5 % top-1 (the released checkpoint). 4 stages at 148/168/188/208 px, AutoAugment and
the EfficientNet-V1 crop (no RandAugment or Mixup to schedule), batch 4096, 350 epochs.
`:curriculum=paper` starts the first stage at 128 px instead.

Embedded data (Fashion-MNIST on a CPU; the same 4 stages from 16 px up to 32 px):
  python -m effnet_jax.main --config configs/efficientnetv2_b2.py:data=embedded --workdir WORKDIR
"""
from effnet_jax.recipes import efficientnetv2


def get_config(arg=None):
  return efficientnetv2('efficientnetv2_b2', randaug_magnitude=None, mix_alpha=0.0, arg=arg)
