"""effnet_jax.predict: labels, the evaluation pipeline's preprocessing, the command line."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from effnet_jax import predict
from effnet_jax.data import DataConfig, Preprocessing, eval_iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def photos(tmp_path):
  """Real photos where scikit-image is installed (its wheel ships them: chelsea the cat, the
  rocket JPEG, the grey cameraman), else random images in the same formats; plus a CMYK JPEG
  and a TIFF (decoded by Pillow) made from the first."""
  folder = tmp_path / 'photos'
  folder.mkdir()
  try:
    import skimage.data
    shipped = os.path.dirname(skimage.data.__file__)
    paths = [shutil.copy(os.path.join(shipped, name), folder)
             for name in ('chelsea.png', 'rocket.jpg', 'camera.png')]
  except ImportError:
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in (('chelsea.png', (300, 451, 3)), ('rocket.jpg', (427, 640, 3)),
                        ('camera.png', (512, 512))):
      paths.append(str(folder / name))
      Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(paths[-1])
  rgb = Image.open(paths[0]).convert('RGB')
  paths.append(str(folder / 'cmyk.jpg'))
  rgb.convert('CMYK').save(paths[-1], 'JPEG', quality=95)
  paths.append(str(folder / 'chelsea.tif'))
  rgb.save(paths[-1], 'TIFF')
  return [str(p) for p in paths]


def test_imagenet_labels_are_the_standard_1000():
  labels = predict.class_labels(1000)
  assert len(labels) == 1000 and len(set(labels)) == 1000
  assert labels[0].startswith('tench') and labels[999].startswith('toilet tissue')
  assert labels[281].startswith('tabby') and labels[504] == 'coffee mug'
  with_background = predict.class_labels(1001)
  assert with_background[0] == 'background' and with_background[1:] == labels
  assert predict.class_labels(3, ['ant', 'bee', 'cat']) == ['ant', 'bee', 'cat']
  assert predict.class_labels(2) == ['class 0', 'class 1']


def test_inputs_and_outputs_match_the_evaluation_pipeline(tiny_pretrained, photos, tmp_path):
  """Each file becomes exactly the input an evaluation over an image folder gives it."""
  weights = tiny_pretrained(1000, crop_fraction=0.8, interpolation='bilinear')
  predictor = predict.Predictor(weights, batch_size=4)
  assert (predictor.prep.eval_image_size, predictor.prep.crop_fraction,
          predictor.prep.interpolation) == (42, 0.8, 'bilinear')
  folder = tmp_path / 'eval' / 'things'
  folder.mkdir(parents=True)
  for index, path in enumerate(photos):  # numbered: the folder's order is the list's
    shutil.copy(path, folder / f'{index}_{os.path.basename(path)}')
  batch = next(eval_iterator(DataConfig(source='folder', eval_folder=str(tmp_path / 'eval')),
                             predictor.prep, len(photos)))
  ours = np.stack([predict.load_image(p, predictor.prep) for p in photos])  # the TIFF: Pillow
  np.testing.assert_array_equal(ours, batch['images'])
  logits = jax.jit(predictor.model.apply)(predictor.variables, batch['images'])
  np.testing.assert_allclose(predictor.probabilities(ours), jax.nn.softmax(logits),
                             rtol=1e-5, atol=1e-6)
  # the CMYK JPEG decodes to (nearly) the colours of its RGB source
  cmyk = predict.load_image(photos[3], predictor.prep)
  source = predict.load_image(photos[0], predictor.prep)
  assert np.abs(cmyk - source).mean() < 0.05


def test_top_k_labels_and_probabilities(tiny_pretrained, photos):
  predictor = predict.Predictor(tiny_pretrained(1001, name='w1001'))
  assert predictor.labels[0] == 'background' and predictor.labels[282].startswith('tabby')
  results = list(predictor.predict_files(photos, k=5))
  assert [r['file'] for r in results] == photos
  for result in results:
    top = result['top5']
    probs = [entry['prob'] for entry in top]
    assert len(top) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert all(entry['label'] == predictor.labels[entry['index']] for entry in top)


def test_command_line(tiny_pretrained, photos, tmp_path):
  weights = tiny_pretrained(1000)
  not_an_image = tmp_path / 'notes.txt'
  not_an_image.write_text('not an image')
  missing = str(tmp_path / 'missing.jpg')
  files = [photos[0], missing, photos[1], str(not_an_image), photos[4]]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run([sys.executable, '-m', 'effnet_jax.predict', '--weights', weights,
                         '--json', *files], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 1, proc.stderr  # two files skipped
  assert 'Traceback' not in proc.stderr
  assert f'skipped {missing}: cannot read: no such file' in proc.stderr
  assert f'skipped {not_an_image}: not a readable image' in proc.stderr
  results = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r['file'] for r in results] == [photos[0], photos[1], photos[4]]
  labels = predict.imagenet_labels()
  for result in results:
    assert set(result) == {'file', 'top5'} and len(result['top5']) == 5
    assert all(set(e) == {'index', 'label', 'prob'} and e['label'] == labels[e['index']]
               for e in result['top5'])


def test_text_output_and_a_bad_weights_directory(tiny_pretrained, photos, tmp_path, capsys):
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'], name='w3')
  assert predict.main(['--weights', weights, photos[0]]) == 0  # top-5 of 3 classes: all 3
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == photos[0] and len(lines) == 4
  assert sorted(line.split()[2] for line in lines[1:]) == ['ant', 'bee', 'cat']
  assert sum(float(line.split()[0]) for line in lines[1:]) == pytest.approx(1.0, abs=2e-4)
  assert predict.main(['--weights', str(tmp_path), photos[0]]) == 1
  assert 'is not a pretrained directory' in capsys.readouterr().err


@pytest.mark.parametrize('image_format, options', [
    ('PNG', {}), ('TIFF', {'compression': 'group4'})], ids=['png', 'tiff'])
def test_a_huge_image_is_refused_from_its_header(photos, tmp_path, image_format, options):
  """20000x20000 pixels (1.2 GB decoded, seconds of decoding) in a 48 kB PNG or a 12 kB TIFF:
  over the default limit, refused after reading the header. TensorFlow's check stops the PNG
  before its decoder, Pillow's (the fallback decoder) the TIFF."""
  path = str(tmp_path / f'huge.{image_format.lower()}')
  Image.new('1', (20000, 20000)).save(path, image_format, **options)
  prep = Preprocessing(image_size=32, eval_image_size=32)
  predict.load_image(photos[0], prep)  # TensorFlow started
  start = time.perf_counter()
  with pytest.raises(predict.ImageError, match=re.escape(
      f'{path}: 20000x20000 pixels, more than max_image_pixels=178956970')):
    predict.load_image(path, prep)
  assert time.perf_counter() - start < 1.0  # decoding it alone takes seconds


def test_images_over_the_pixel_limit_are_skipped(tiny_pretrained, photos, tmp_path, capsys):
  """One stderr line per image over --max_image_pixels, the others classified, exit code 1."""
  weights = tiny_pretrained(1000)
  huge = str(tmp_path / 'huge.png')
  Image.new('1', (20000, 20000)).save(huge)
  large_tiff = str(tmp_path / 'large.tif')  # decoded by Pillow
  Image.new('RGB', (1000, 600)).save(large_tiff)
  files = [photos[0], huge, photos[4], large_tiff, photos[1]]  # the photos: up to 273,280 pixels
  assert predict.main(['--weights', weights, '--json', '--max_image_pixels', '500000',
                       *files]) == 1
  out, err = capsys.readouterr()
  assert [json.loads(line)['file'] for line in out.splitlines()] == [photos[0], photos[4],
                                                                     photos[1]]
  assert err.splitlines() == [
      f'effnet_jax.predict: skipped {huge}: 20000x20000 pixels, more than max_image_pixels=500000',
      f'effnet_jax.predict: skipped {large_tiff}: 1000x600 pixels, more than '
      'max_image_pixels=500000']


def test_a_batch_is_padded_to_the_next_power_of_two():
  assert [predict.padded_size(n) for n in (1, 2, 3, 5, 8, 9, 16)] == [1, 2, 4, 8, 8, 16, 16]
