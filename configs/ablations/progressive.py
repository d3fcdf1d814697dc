"""Progressive learning vs fixed-size training at equal epochs: time-to-accuracy curves
(EfficientNetV2 Sec. 4, Table 7's training-time column).

  python -m effnet_jax.tools.ablate --config configs/ablations/progressive.py \
      --workdir workdirs/ablations/progressive
  python -m effnet_jax.tools.ablate --config configs/ablations/progressive.py:scale=imagenet \
      --workdir gs://BUCKET/progressive --config.train.data.manual_dir=/data/imagenet

Small: configs/curriculum_smoke.py (EfficientNetV2-B0 at φ = −8; 3 stages at 16, 24, 32 px with
RandAugment and Mixup/CutMix ramps; 1 epoch) against its fixed-size twin at 32 px, evaluated
every quarter epoch. scale=imagenet: configs/efficientnetv2.py:variant=s (4 stages, 350 epochs)
against its fixed-size twin, configs/efficientnetv2.py:variant=s,progressive=false. Writes
results.csv, curves.csv (one line per evaluation: step, epoch, train-step seconds, top-1) and
progressive.png.
Expected at ImageNet scale: the progressive run spends less train-step time for the same epochs
at the same or better accuracy. At this scale one epoch is too short for that (the progressive
run is evaluated at 32 px while its early stages train at 16/24 px). Measured results and wall
time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of
from effnet_jax.recipes import efficientnetv2_config, small_progressive


def get_config(arg=None):
  if scale_of(arg) == 'imagenet':
    train = efficientnetv2_config('variant=s')
  else:
    train = small_progressive()
    train.eval_every_epochs = 0.25
    train.log_every_steps = 20
    train.tensorboard = False
  return experiment('progressive', 'progressive', train)
