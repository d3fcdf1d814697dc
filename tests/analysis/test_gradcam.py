"""GradCAM maps: shapes, range, any layer, the file grid."""
import os

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from effnet_jax.analysis import gradcam
from effnet_jax.pretrained import load_pretrained

CLASSES = ['a', 'b', 'c', 'd']


@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
  directory = tmp_path_factory.mktemp('images')
  rng = np.random.default_rng(0)
  paths = []
  for i, size in enumerate((30, 50)):
    path = str(directory / f'{i}.png')
    Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), np.uint8)).save(path)
    paths.append(path)
  return paths


def test_maps_are_in_the_unit_interval_at_the_feature_resolution(tiny_pretrained):
  model, variables = load_pretrained(tiny_pretrained(4, CLASSES))
  images = np.random.default_rng(1).normal(size=(2, 42, 42, 3)).astype(np.float32)
  # the same program as the grid test below compiles (the persistent cache serves it twice)
  maps, classes, probabilities = jax.jit(lambda v, x: gradcam.gradcam(model, v, x))(
      variables, images)
  features = jax.eval_shape(lambda v, x: model.apply(v, x, method='forward_features'),
                            variables, images)
  assert maps.shape == features['head'].shape[:3] and classes.shape == (2,)
  assert np.all((maps >= 0) & (maps <= 1))
  np.testing.assert_allclose(np.max(maps, axis=(1, 2)), 1, rtol=1e-6)  # each image's own peak
  np.testing.assert_array_equal(classes, np.argmax(probabilities, -1))
  assert gradcam.upsample(maps, 42, 40).shape == (2, 42, 40)
  stage = jax.eval_shape(lambda v, x: gradcam.gradcam(model, v, x, layer='stage3'),
                         variables, images)[0]
  assert stage.shape == features['stage3'].shape[:3]
  with pytest.raises(ValueError, match='unknown layer'):
    gradcam.gradcam(model, variables, images, layer='stage9')


def test_grid_of_models_on_files(tmp_path, tiny_pretrained, image_files):
  weights = tiny_pretrained(4, CLASSES)
  config = ml_collections.ConfigDict(dict(name='cam', weights=(weights,), layer='head',
                                          images=tuple(image_files), num_images=0))
  rows = gradcam.run_gradcam(config, str(tmp_path))
  assert len(rows) == 2 and {r['label'] for r in rows} <= set(CLASSES)
  assert os.path.getsize(tmp_path / 'cam.png') > 1000
  config.images = (image_files[0], 'missing.png')
  with pytest.raises(FileNotFoundError, match='missing.png'):
    gradcam.run_gradcam(config, str(tmp_path))
  config.images = (image_files[0],)
  config.weights = (weights, str(tmp_path / 'no_such_run'))
  with pytest.raises(FileNotFoundError, match=r'no such weights directory: .*no_such_run\. '
                                              r'(.|\n)*configs/ablations/scaling.py'):
    gradcam.run_gradcam(config, str(tmp_path))
