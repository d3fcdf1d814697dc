"""EfficientNetV2-S/M/L/XL and B0 … B3 with progressive learning, the google/automl recipe as
released; ``variant`` picks the model.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnetv2.py:variant=s --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
4 stages of 87.5 epochs at growing image sizes, batch 4096, 350 epochs, eval at the model's eval
size. S/M/L/XL: RandAugment from 5 and Mixup = CutMix from 0 up to the row's values (the released
code's; dropout constant), crop area from 5 %. B0 … B3: AutoAugment and the EfficientNet-V1 crop
(no RandAugment or Mixup to schedule).
Expected: the top-1 of the variant's row (paper and released checkpoints):

  variant  model              stage sizes (px)  RandAugment  Mixup = CutMix  Expected top-1
  s        efficientnetv2_s   171/214/257/300   5 -> 10      0               83.9 %
  m        efficientnetv2_m   192/256/320/384   5 -> 15      0 -> 0.2        85.2 %
  l        efficientnetv2_l   192/256/320/384   5 -> 20      0 -> 0.5        85.7 %
  xl       efficientnetv2_xl  192/256/320/384   5 -> 20      0 -> 0.5        87.3 % *
  b0       efficientnetv2_b0  144/160/176/192   AutoAugment  -               78.7 %
  b1       efficientnetv2_b1  144/160/176/192   AutoAugment  -               79.8 %
  b2       efficientnetv2_b2  148/168/188/208   AutoAugment  -               80.5 %
  b3       efficientnetv2_b3  156/184/212/240   AutoAugment  -               82.1 %
  * ImageNet-21k pre-trained; ImageNet-1k only: not published.

The paper's Table 6 values instead (first stage at 128 px; M/L/XL up to 380 px; S/M/L(/XL)
RandAugment up to 15/20/25, Mixup up to 0/0.2/0.4 without CutMix, dropout ramped from 0.1 up to
0.3/0.4/0.5):
  python -m effnet_jax.main --config configs/efficientnetv2.py:variant=s,curriculum=paper \\
      --workdir WORKDIR --config.data.manual_dir=MANUAL_DIR

The fixed-size ablation twin (the final stage's size and regularization throughout):
  python -m effnet_jax.main --config configs/efficientnetv2.py:variant=s,progressive=false \\
      --workdir WORKDIR --config.data.manual_dir=MANUAL_DIR
Expected: below the progressive run's top-1 and slower per epoch (the paper's progressive-learning
ablation, Table 7).

Embedded data (Fashion-MNIST on a CPU; the same 4 stages from 16 px up to 32 px):
  python -m effnet_jax.main --config configs/efficientnetv2.py:variant=s,data=embedded \\
      --workdir WORKDIR

Config argument: variant (required: s, m, l, xl, b0 … b3), progressive=true (default) | false,
curriculum=code (default) | paper (progressive only), data=imagenet (default) | embedded. The
recipe and each variant's values: effnet_jax/recipes.py (efficientnetv2,
EFFICIENTNETV2_VARIANTS).
"""
from effnet_jax.recipes import efficientnetv2_config


def get_config(arg=None):
  return efficientnetv2_config(arg)
