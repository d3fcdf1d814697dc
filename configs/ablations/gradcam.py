"""GradCAM class-activation maps for trained models on image files: a PNG grid, one row per model
(the compound-scaling attention comparison of EfficientNet, Fig. 7).

  python -m effnet_jax.tools.ablate --config configs/ablations/gradcam.py \
      --workdir workdirs/ablations/gradcam
  python -m effnet_jax.tools.ablate --config configs/ablations/gradcam.py \
      --workdir /tmp/cam --config.weights="('/weights/b0', '/weights/b3')" \
      --config.images="('cat.jpg', 'dog.jpg')"

By default the models of the scaling experiment (run configs/ablations/scaling.py first): the
base, and width-, depth-, resolution- and compound-scaled at φ = 1 (seed 0), on the first 8 test images of
the embedded data set (written as PNG files to WORKDIR/images). Any pretrained directory or
training workdir works (--config.weights), on any image files (--config.images). Each model sees
its own eval preprocessing. Maps at stage 3 (the head's map is 1x1 below 33 px; scale=imagenet:
the head, as the paper). Writes results.csv (class, probability per model and image) and
gradcam.png. scale=imagenet: the same on ImageNet-scale weights — give --config.weights and
--config.images.
Expected: maps on the garment; the compound-scaled model's the most object-covering (at this
scale a qualitative picture, not a measurement).
"""
import ml_collections

from effnet_jax.analysis.configs import experiment, scale_of
from effnet_jax.analysis.trainer import small_train_config

SCALING_RUNS = ('base', 'width_phi1', 'depth_phi1', 'resolution_phi1', 'compound_phi1')


def get_config(arg=None):
  small = scale_of(arg) == 'small'
  weights = tuple(f'workdirs/ablations/scaling/runs/{r}/seed0' for r in SCALING_RUNS) if small else ()
  data = small_train_config().data if small else ml_collections.ConfigDict()
  return experiment('gradcam', 'gradcam', train=None,
                    claim='Compound-scaled models attend to more of the relevant object '
                          '(EfficientNet Fig. 7): a picture, not a measurement, so no verdict',
                    weights=weights, images=(),
                    num_images=8, data=data, layer='stage3' if small else 'head')
