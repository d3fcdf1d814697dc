"""EfficientNetV2-S at its final train size, no progressive stages: the ablation twin of
configs/efficientnetv2_s.py (the google/automl recipe with the last stage's regularization throughout).

ImageNet (TFDS imagenet2012; put the ILSVRC2012 tar files in MANUAL_DIR):
  python -m effnet_jax.main --config configs/efficientnetv2_s_fixed.py --workdir WORKDIR \\
      --config.data.manual_dir=MANUAL_DIR
Expected: below the progressive run's 83.9 % top-1 and slower per epoch (the paper's
progressive-learning ablation, Table 7); RandAugment 10, Mixup = CutMix 0, batch 4096,
350 epochs.

Embedded data (Fashion-MNIST on a CPU):
  python -m effnet_jax.main --config configs/efficientnetv2_s_fixed.py:data=embedded --workdir WORKDIR
"""
from effnet_jax.recipes import efficientnetv2


def get_config(arg=None):
  return efficientnetv2('efficientnetv2_s', randaug_magnitude=10.0, mix_alpha=0.0, arg=arg,
                        progressive=False)
