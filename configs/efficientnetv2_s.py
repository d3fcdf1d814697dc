"""EfficientNetV2-S with progressive learning, the google/automl recipe as released.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnetv2_s.py --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Expected: 83.9 % top-1 (paper and released checkpoint). 4 stages of 87.5 epochs at image sizes
171/214/257/300 with RandAugment 5 -> 10, Mixup = CutMix 0 (the released code's values; dropout constant), batch 4096, 350 epochs,
eval at the model's eval size. The paper's Table 6 values instead (first stage at 128 px,
dropout ramped too): `--config configs/efficientnetv2_s.py:curriculum=paper`. The fixed-size ablation
twin: configs/efficientnetv2_s_fixed.py.

Embedded data (Fashion-MNIST on a CPU; the same 4 stages from 16 px up to 32 px):
  python -m effnet_jax.main --config configs/efficientnetv2_s.py:data=embedded --workdir WORKDIR
"""
from effnet_jax.recipes import efficientnetv2


def get_config(arg=None):
  return efficientnetv2('efficientnetv2_s', randaug_magnitude=10.0, mix_alpha=0.0, arg=arg,
                        paper=dict(randaug_magnitude_max=15.0, dropout_min=0.1, dropout_max=0.3))
