"""Progressive learning vs fixed-size training for ResNet-50 at equal steps (EfficientNetV2
Sec. 6, "progressive learning for different networks", applies it to ResNets too).

  python -m effnet_jax.tools.ablate --config configs/ablations/progressive_resnet.py \
      --workdir workdirs/ablations/progressive_resnet
  python -m effnet_jax.tools.ablate \
      --config configs/ablations/progressive_resnet.py:scale=imagenet \
      --workdir gs://BUCKET/progressive_resnet --config.train.data.manual_dir=/data/imagenet

Small: configs/ablations/progressive.py's design with ResNet-50 at φ = −14 (2.5 M MACs at
32 px) in place of EfficientNetV2-B0: 3 stages at 16, 24, 32 px with RandAugment and
Mixup/CutMix ramps, EPOCHS epochs, against its fixed-size twin at 32 px, 3 seeds each, evaluated
every half epoch at 32 px.
scale=imagenet: configs/resnet.py:variant=50,progressive=true (4 stages from 128 px, 120
epochs) against configs/resnet.py:variant=50. Claim: the progressive run's train-step time (the
timing pass, per stage) below the fixed run's and its accuracy no more than `margin` (0.5
points) below. Writes results.csv, seeds.csv, verdict.md, curves.csv and progressive_resnet.png.
Expected at ImageNet scale: less train-step time at about the same accuracy. Measured verdict
and wall time at the small scale: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, small_progressive_train
from effnet_jax.recipes import resnet_config

EPOCHS = 2.0  # small
IMAGE_SIZES = (16, 24, 32)  # small: the stages' sizes
PHI = -14.0  # small: ResNet-50 compound-scaled down


def get_config(arg=None):
  if scale_of(arg) == 'imagenet':
    train = resnet_config('variant=50,progressive=true')
  else:
    train = small_progressive_train(EPOCHS, IMAGE_SIZES)
    train.model = 'resnet50'
    train.model_overrides.phi = PHI
  return experiment(
      'progressive_resnet', 'progressive', train,
      claim="Progressive learning reaches the fixed-size run's accuracy in less training time, "
            'also for ResNet-50 (EfficientNetV2 Sec. 6, progressive learning for different '
            'networks)',
      margin=0.005)
