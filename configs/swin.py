"""Swin Transformer T/S/B (patch 4, window 7, 224 px), the official ImageNet-1k recipe
(microsoft/Swin-Transformer; the paper's appendix A2.1); ``variant`` picks the size.

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/swin.py:variant=tiny --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
AdamW 1e-3 at batch 1024, 20 warm-up epochs, cosine, 300 epochs, weight decay 0.05, gradient
clipping 5, RandAugment, Mixup 0.8 / CutMix 1.0, stochastic depth 0.2 / 0.3 / 0.5.
Expected: the top-1 of the variant's row (Swin paper, Table 1(a)):

  variant  model                          Expected top-1
  tiny     swin_tiny_patch4_window7_224   81.3 %
  small    swin_small_patch4_window7_224  83.0 %
  base     swin_base_patch4_window7_224   83.5 %

Not reproduced: random erasing (p 0.25) and timm's per-batch Mixup/CutMix switch and magnitude
noise; our Mixup/CutMix mix half the batch each (docs/reference.md).

Embedded data (Fashion-MNIST on a CPU; a smoke-scale run of the same recipe; window 4 at 32 px):
  python -m effnet_jax.main --config configs/swin.py:variant=tiny,data=embedded --workdir WORKDIR

Config argument: variant (required: tiny, small, base), data=imagenet (default) | embedded.
The recipe: effnet_jax/recipes.py (swin).
"""
from effnet_jax.recipes import swin_config


def get_config(arg=None):
  return swin_config(arg)
