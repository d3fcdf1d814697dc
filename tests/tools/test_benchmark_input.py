"""The input-pipeline benchmark and the pre-resizing tool on a few generated JPEGs."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from effnet_jax.tools import benchmark_input, prepare_data
from effnet_jax.tools.benchmark_input import Rate


@pytest.fixture(scope='module')
def jpeg_folder(tmp_path_factory):
  folder = tmp_path_factory.mktemp('jpegs')
  assert benchmark_input.main(['--generate', str(folder), '--num_images', '8',
                               '--num_classes', '2']) == 0
  return folder


def test_generated_jpegs_are_imagenet_sized_photos(jpeg_folder):
  paths = benchmark_input.list_jpegs(str(jpeg_folder))
  assert len(paths) == 8 and {p.split('/')[-2] for p in paths} == {'class_0', 'class_1'}
  sizes = [Image.open(p).size for p in paths]
  assert sizes.count((500, 375)) == 6 and sizes.count((375, 500)) == 2
  # photo content, not flat colour or white noise: neighbouring pixels are correlated
  import numpy as np
  pixels = np.asarray(Image.open(paths[0]), np.float32)
  assert pixels.std() > 20
  assert np.corrcoef(pixels[:, :-1].ravel(), pixels[:, 1:].ravel())[0, 1] > 0.8


@pytest.fixture(scope='module')
def prepared_folder(jpeg_folder, tmp_path_factory):
  """The generated JPEGs cut to a longer side of 100 px, plus a broken file and a small PNG."""
  source = tmp_path_factory.mktemp('to_prepare')
  (source / 'class_0').mkdir()
  for path in benchmark_input.list_jpegs(str(jpeg_folder))[:3]:
    (source / 'class_0' / path.split('/')[-1]).write_bytes(open(path, 'rb').read())
  (source / 'class_0' / 'broken.jpg').write_bytes(b'not a jpeg')
  Image.new('RGB', (40, 30), (200, 10, 10)).save(source / 'class_0' / 'small.png')
  output = tmp_path_factory.mktemp('prepared')
  errors = prepare_data.prepare(str(source), str(output), 100, workers=1, progress=False)
  return source, output, errors


def test_prepare_resizes_copies_and_reports(prepared_folder):
  source, output, errors = prepared_folder
  assert len(errors) == 1 and 'broken.jpg' in errors[0]
  sizes = sorted(Image.open(p).size for p in (output / 'class_0').glob('0*.jpg'))
  assert sizes == [(75, 100), (100, 75), (100, 75)]  # two landscape, one portrait
  small = source / 'class_0' / 'small.png'
  assert (output / 'class_0' / 'small.png').read_bytes() == small.read_bytes()  # fits: copied


def test_cli_times_the_pipeline_on_the_prepared_folder(prepared_folder, tmp_path, capsys):
  path = tmp_path / 'input.json'
  assert benchmark_input.main(['--folder', str(prepared_folder[1]), '--image_size', '32',
                               '--batch_size', '4', '--num_batches', '2',
                               '--warmup_batches', '1', '--json', str(path)]) == 0
  assert '| effnet_jax tf.data (randaugment) | 8 |' in capsys.readouterr().out
  (rate,) = json.loads(path.read_text())
  assert rate['images'] == 8 and rate['images_per_sec'] > 0 and rate['cpu_s'] > 0
  assert benchmark_input.main(['--folder', str(prepared_folder[1]), '--image_size', '32',
                               '--batch_size', '4', '--num_batches', '1', '--warmup_batches', '0',
                               '--augment', 'device']) == 0
  assert '| effnet_jax tf.data (device) | 4 |' in capsys.readouterr().out


def test_table_ratio_is_per_core():
  rates = [Rate('effnet_jax', 100, wall_s=1.0, cpu_s=0.25), Rate('timm', 100, 1.0, 1.0)]
  assert '| effnet_jax | 100 | 100.0 | 400.0 | 4.00x |' in benchmark_input.format_table(rates)


def test_timm_transform_in_a_worker_process(jpeg_folder):  # the --vs_timm path
  pytest.importorskip('timm')
  rate = benchmark_input.measure_timm_in_subprocess(str(jpeg_folder), image_size=32,
                                                    num_images=4, warmup_images=0)
  assert rate.pipeline.startswith('timm') and rate.images == 4 and rate.cpu_s > 0


def test_resized_size_keeps_the_aspect_ratio():
  assert prepare_data.resized_size(500, 375, 320) == (320, 240)
  assert prepare_data.resized_size(375, 500, 320) == (240, 320)
  assert prepare_data.resized_size(200, 100, 320) == (200, 100)
  assert prepare_data.resized_size(5000, 1, 320) == (320, 1)


def test_prepare_refuses_to_overwrite_its_input(tmp_path):
  with pytest.raises(ValueError, match='must differ'):
    prepare_data.prepare(str(tmp_path), str(tmp_path), 100)


def test_prepare_skips_images_over_the_pixel_limit(tmp_path, capsys):
  """One stderr line per image whose header gives more than --max_image_pixels; the others
  are prepared."""
  source = tmp_path / 'source'
  (source / 'class_0').mkdir(parents=True)
  Image.new('RGB', (40, 20)).save(source / 'class_0' / 'small.png')  # 800 pixels: copied
  Image.new('RGB', (40, 40)).save(source / 'class_0' / 'large.png')
  Image.new('1', (20000, 20000)).save(source / 'class_0' / 'huge.png')  # 48 kB, 1.2 GB decoded
  output = tmp_path / 'output'
  assert prepare_data.main(['--input', str(source), '--output', str(output), '--max_side', '100',
                            '--max_image_pixels', '1000', '--workers', '1']) == 0
  assert [p.name for p in (output / 'class_0').iterdir()] == ['small.png']
  skipped = sorted(line for line in capsys.readouterr().err.splitlines()
                   if line.startswith('skipped'))
  assert skipped == [
      f'skipped unreadable image {source}/class_0/{name}: {size} pixels, more than '
      'max_image_pixels=1000' for name, size in (('huge.png', '20000x20000'),
                                                 ('large.png', '40x40'))]


def test_generate_without_the_interop_extras_says_how_to_install_them(tmp_path):
  """Without scikit-image (an interop extra) --generate is a one-line exit-2 error, not a
  traceback."""
  code = ("import sys; sys.modules['skimage'] = sys.modules['skimage.data'] = None\n"
          'from effnet_jax.tools import benchmark_input\n'
          f"benchmark_input.main(['--generate', {str(tmp_path / 'jpegs')!r}])")
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1] == (
      'effnet_jax.tools.benchmark_input: error: --generate (its photographs) needs skimage, one '
      'of the interop extras: launch/setup.sh --interop (or pip install "effnet_jax[interop]")')
  assert not (tmp_path / 'jpegs').exists()
