"""Compound vs single-dimension scaling applied to MobileNetV2 and ResNet-50 at matched MACs
(EfficientNet Sec. 3.3 and Table 3); ``network`` picks the base network.

  python -m effnet_jax.tools.ablate --config configs/ablations/scaling_cnns.py:network=mobilenetv2 \
      --workdir workdirs/ablations/scaling_mobilenetv2
  python -m effnet_jax.tools.ablate --config configs/ablations/scaling_cnns.py:network=resnet50 \
      --workdir workdirs/ablations/scaling_resnet50
  python -m effnet_jax.tools.ablate \
      --config configs/ablations/scaling_cnns.py:network=resnet50,scale=imagenet \
      --workdir gs://BUCKET/scaling_resnet50 --config.train.data.manual_dir=/data/imagenet

The base network (small: MobileNetV2-1.0 or ResNet-50 compound-scaled to φ = −12 at 24 px on the
embedded Fashion-MNIST; scale=imagenet: the network itself at 224 px with its official recipe,
configs/mobilenetv2.py or configs/resnet.py) is scaled by φ (small: 1; imagenet: 1 and 2, the
paper's Table 3 compares at about 4x the base FLOPs) with EfficientNet's (α, β, γ) = (1.2, 1.1,
1.15) and the family's own rounding; width-only, depth-only and resolution-only models are
matched to each compound model's MACs (the experiment of configs/ablations/scaling.py). Small:
5 rows (the base and the four φ = 1 models) × 3 seeds of STEPS[network] steps (480 and 400).
Claim: compound above every single dimension at equal MACs (one test per dimension and φ).
Writes results.csv, seeds.csv, verdict.md and scaling_<network>.png.
Expected at ImageNet scale: the paper's Table 3 (MobileNetV2 77.4 % compound vs 76.8 / 76.4 /
74.8 % depth / width / resolution; ResNet-50 78.8 % vs 78.1 / 77.7 / 77.5 %). Measured verdicts
and wall times at the small scale: docs/ablations.md.
"""
from effnet_jax.analysis.configs import arg_of, experiment, scale_of, train_config

NETWORKS = {'mobilenetv2': 'mobilenetv2_100', 'resnet50': 'resnet50'}
# small: steps of batch 64 per network (about half an epoch; each study under 10 minutes)
STEPS = {'mobilenetv2': 480, 'resnet50': 400}


def get_config(arg=None):
  scale = scale_of(arg, network=tuple(NETWORKS))
  network = arg_of(arg, 'network', 'mobilenetv2')
  small = scale == 'small'
  train = train_config(scale, NETWORKS[network])
  if small:
    train.num_train_steps = STEPS[network]
  return experiment(
      f'scaling_{network}', 'scaling', train,
      claim=f'Compound scaling of {NETWORKS[network]} beats scaling a single dimension (width, '
            'depth or resolution) at equal MACs (EfficientNet Sec. 3.3, Table 3)',
      model=NETWORKS[network], base_phi=-12.0 if small else 0.0,
      base_image_size=24 if small else 224, phis=(1.0,) if small else (1.0, 2.0),
      dimensions=('width', 'depth', 'resolution'), alpha=1.2, beta=1.1, gamma=1.15)
