"""ReXNet's channel-configuration study: c_i = a·f(i) + b with f linear (ReXNet), piecewise-linear
or stage-wise (MobileNetV2-style), at the linear model's MACs; each trained, then the singular
values and normalized nuclear norm of every block's output of the trained models.

  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_channels.py \
      --workdir workdirs/ablations/rexnet_channels
  python -m effnet_jax.tools.ablate --config configs/ablations/rexnet_channels.py:scale=imagenet \
      --workdir gs://BUCKET/rexnet_channels --config.train.data.manual_dir=/data/imagenet

Small: ReXNet at width 0.5, depth 0.5 (10 blocks) at 32 px, 3 rows × 3 seeds of 240 steps on
the embedded data set; spectra of seed 0 on 256 test images. scale=imagenet: ReXNet-1.0 at
224 px with the timm recipe. Claim: linear above piecewise and stage-wise at equal MACs. Writes
results.csv, seeds.csv, verdict.md, spectra.csv and rexnet_channels.png.
Expected: the three schedules within a few points at this scale. The paper (ImageNet): linear
best. Measured verdict and wall time: docs/ablations.md.
"""
from effnet_jax.analysis.configs import experiment, scale_of, train_config


def get_config(arg=None):
  scale = scale_of(arg)
  small = scale == 'small'
  train = train_config(scale, 'rexnet_100', image_size=32)
  return experiment(
      'rexnet_channels', 'rexnet_channels', train,
      claim='At equal MACs the linear channel configuration is the most accurate (ReXNet Sec. 4)',
      width_mult=0.5 if small else 1.0,
      depth_mult=0.5 if small else 1.0, schedules=('linear', 'piecewise', 'stagewise'), knot=0.5,
      slopes=(0.5, 1.5), match_iterations=10, spectrum_images=256 if small else 1024, rtol=1e-3)
