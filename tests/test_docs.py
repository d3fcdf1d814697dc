"""The documented commands and snippets run as written.

Every shell command of README.md (its ```bash blocks and its inline `.venv/bin/python -m ...`
spans) is listed in COMMANDS: run here, with the paths it names pointed into a temporary
workspace and tiny overrides appended (fewer steps, smaller batches), or skipped with the reason
(network, an accelerator, data that cannot be here). A README command missing from the table, or
a table entry no longer in README, fails the first test, so the docs cannot drift from the code.
README's Python blocks and the worked backbone example of docs/weights.md run too, in a fresh
interpreter outside the checkout, against an offline Hugging Face cache built here.
"""
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import pytest

pytest.importorskip('timm')  # the commands convert timm weights and compare with timm

from tests.conftest import built_once  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')

# The training commands run without training steps: the config, the data, the model (from its
# init_from weights), a checkpoint and an evaluation, as written; the train step itself is the
# trainer tests' (tests/train/). TINY_EVAL: the embedded data set's evaluation on a tenth of its
# test split (the whole of it, twice: raw and EMA weights, was most of such a command's time).
TINY_TRAINING = ('--config.num_train_steps=0 --config.eval_batch_size=500 '
                 '--config.progress_bar=False --config.tensorboard=False')
TINY_EVAL = '--config.data.eval_split=test[:1000]'
TINY_INPUT = '--config.input.image_size=32 --config.input.eval_image_size=32'
NETWORK = 'installs packages from PyPI (tests/test_package.py installs the wheel offline)'

# README command -> tiny arguments appended when it runs here, or (None, why it cannot run here)
COMMANDS: dict[str, tuple[str | None, str]] = {
    'launch/setup.sh': (None, 'the set-up CI runs before the suite'),
    'launch/setup.sh --interop': (None, 'the set-up CI runs before the suite'),
    '.venv/bin/python -m pytest': (None, 'the suite itself'),
    '.venv/bin/python -m effnet_jax.main': (f'--workdir {{ws}}/default {TINY_TRAINING} '
                                            f'{TINY_EVAL}', ''),
    '.venv/bin/python -m effnet_jax.main --config configs/efficientnet.py:variant=b0 '
    '--workdir /ckpt/b0 --config.data.manual_dir=/data/imagenet':
        (None, 'needs the ImageNet tar files'),
    '.venv/bin/python -m effnet_jax.main --config configs/rexnet.py:variant=100,data=embedded '
    '--workdir /tmp/rx': (f'{TINY_TRAINING} {TINY_INPUT} {TINY_EVAL} '
                          '--config.model_overrides.depth_mult=0.34 '
                          '--config.model_overrides.width_mult=0.5', ''),
    '.venv/bin/python -m effnet_jax.tools.convert --source timm --arch tf_efficientnet_b0 '
    '--input model.safetensors --output /weights/b0': ('', ''),
    '.venv/bin/python -m effnet_jax.predict --weights /weights/b0 cat.jpg': ('', ''),
    '.venv/bin/python -m effnet_jax.predict --weights efficientnet_lite0.in1k cat.jpg': ('', ''),
    '.venv/bin/python -m effnet_jax.evaluate --weights /weights/b0 --folder /data/imagenet/val':
        ('', ''),
    '.venv/bin/python -m effnet_jax.main --config configs/finetune_folder.py --workdir /tmp/ft '
    '--config.model=efficientnet_lite0 --config.init_from=efficientnet_lite0.in1k '
    '--config.data.train_folder=/data/pets/train --config.data.eval_folder=/data/pets/val':
        (f'{TINY_TRAINING} {TINY_INPUT}', ''),
    '.venv/bin/python -m effnet_jax.tools.export --weights /weights/b0 --output /tmp/b0_saved '
    '--tflite --onnx': ('--image_size 64', ''),
    '.venv/bin/pip install -U jax[cuda12]==0.10.2': (None, 'an NVIDIA GPU host'),
    '.venv/bin/pip install -U jax[tpu]==0.10.2': (None, 'a Cloud TPU VM'),
    'pip install .': (None, NETWORK),
    'pip install .[interop]': (None, NETWORK),
    'pip install .[gpu]': (None, NETWORK),
    'pip install .[tpu]': (None, NETWORK),
    'pip install .[test]': (None, NETWORK),
    'pip install -r requirements.txt': (None, NETWORK),
    'pip install --no-deps .': (None, NETWORK),
    '.venv/bin/python -m effnet_jax.tools.benchmark --model efficientnet_b0 --mode train infer '
    '--batch_size 128 --image_size 32 --dtype f32 --vs_timm --device_randaugment --interleave '
    '--warmup 2 --steps 3 --repeats 8':
        ('--mode infer --batch_size 8 --warmup 0 --steps 1 --repeats 1 --no_timm_compile', ''),
    '.venv/bin/python -m effnet_jax.tools.benchmark --case efficientnet_b0:infer:32:224 '
    '--case efficientnet_b0:latency:1:224 --dtype f32 --vs_timm --interleave --warmup 3 '
    '--steps 5 --repeats 10':
        (None, 'batch 1 does not split over the suite\'s 4 fake devices; '
               'tests/tools/test_benchmark.py runs the infer and latency modes'),
    '.venv/bin/python -m effnet_jax.tools.summary --model efficientnet_b0': ('', ''),
    '.venv/bin/python -m effnet_jax.tools.summary --all > docs/models.md':
        (None, 'tests/tools/test_summary.py compares docs/models.md with its output'),
}
# Commands whose output others read (converted weights, generated images): they run first.
PRODUCERS = ('effnet_jax.tools.convert',)


def fenced(text: str, language: str) -> list[str]:
  return re.findall(r'^```' + language + r'\n(.*?)^```', text, re.S | re.M)


def shell_commands(text: str) -> list[str]:
  """The commands of a markdown text: each line of its bash blocks (continuations joined,
  comments dropped, ``&&`` separating commands) and its inline ``.venv/bin/python -m`` spans."""
  found = []
  for block in fenced(text, 'bash'):
    for line in block.replace('\\\n', ' ').splitlines():
      for command in ' '.join(shlex.split(line, comments=True)).split(' && '):
        if command.strip():
          found.append(command.strip())
  found += re.findall(r'`(\.venv/bin/python -m [^`]+)`', text)
  return found


def test_every_readme_command_is_in_the_table():
  documented = shell_commands(open(README).read())
  assert sorted(set(documented) - set(COMMANDS)) == [], 'add these README commands to COMMANDS'
  assert sorted(set(COMMANDS) - set(documented)) == [], 'no longer in README: drop them'


@pytest.fixture(scope='session')
def workspace():
  """The workspace of build_workspace, built once per session (the workers share it)."""
  return pathlib.Path(built_once('docs-workspace', build_workspace))


def build_workspace(directory: str) -> str:
  """A directory with what the commands name: timm weights (random), a photo, a two-class image
  folder, and an offline Hugging Face cache holding tf_efficientnet_b0.ns_jft_in1k (random)."""
  import json

  import numpy as np
  import skimage.data
  from PIL import Image
  from safetensors.torch import save_file
  from timm.models import get_pretrained_cfg

  from tests.test_hub import put_in_hub_cache
  from tests.timm_helpers import random_timm

  ws = pathlib.Path(directory)
  b0 = {k: v.contiguous() for k, v in random_timm('tf_efficientnet_b0').state_dict().items()}
  save_file(b0, str(ws / 'model.safetensors'))
  Image.fromarray(skimage.data.chelsea()).save(ws / 'cat.jpg')
  photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
            skimage.data.rocket()]
  for split in ('train', 'val'):
    for c, name in enumerate(('cats', 'cups')):
      os.makedirs(ws / 'pets' / split / name)
      for i, photo in enumerate(photos):
        image = Image.fromarray(np.roll(photo, 40 * (i + c), axis=1)).resize((64, 48))
        image.save(ws / 'pets' / split / name / f'{i}.jpg')
  for wnid, photo in (('n02123045', skimage.data.chelsea()), ('n07920052', skimage.data.coffee())):
    os.makedirs(ws / 'imagenet' / 'val' / wnid)  # tabby, espresso
    Image.fromarray(photo).save(ws / 'imagenet' / 'val' / wnid / 'photo.jpg')
  cache = str(ws / 'hf-cache')
  save_file(b0, str(ws / 'ns.safetensors'))
  cfg = get_pretrained_cfg('tf_efficientnet_b0.ns_jft_in1k').to_dict()
  (ws / 'ns-config.json').write_text(json.dumps(
      {'architecture': 'tf_efficientnet_b0', 'num_classes': 1000, 'pretrained_cfg': cfg},
      default=list))
  put_in_hub_cache(cache, 'timm/tf_efficientnet_b0.ns_jft_in1k',
                   {'config.json': str(ws / 'ns-config.json'),
                    'model.safetensors': str(ws / 'ns.safetensors')})
  for command in PRODUCED:
    run(command, ws)
  # the tags the commands and blocks name, converted now: the workers then only read the cache
  run_python("from effnet_jax import hub\nhub.resolve('efficientnet_lite0.in1k')\n"
             "hub.resolve('tf_efficientnet_b0.ns_jft_in1k')", ws)
  return str(ws)


def environment(ws) -> dict[str, str]:
  env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HUB_CACHE=str(ws / 'hf-cache'),
             EFFNET_JAX_CACHE=str(ws / 'effnet-cache'), PYTHONPATH=ROOT)
  env.pop('XLA_FLAGS', None)  # one CPU device, as a user's machine
  return env


def as_run_here(command: str, ws) -> list[str]:
  """The command with its absolute paths moved into the workspace and the venv's interpreter
  replaced by this one."""
  for path in ('/weights/', '/tmp/', '/data/pets/', '/data/imagenet/'):
    command = command.replace(path, f'{ws}/{path.strip("/").replace("data/", "")}/')
  words = shlex.split(command)
  if words[0] == '.venv/bin/python':
    words[0] = sys.executable
  return words


def run(command: str, ws, timeout=600) -> subprocess.CompletedProcess:
  extra = COMMANDS[command][0]
  words = as_run_here(command, ws) + shlex.split(extra.format(ws=ws))
  start = time.monotonic()
  done = subprocess.run(words, cwd=ws, env=environment(ws), capture_output=True, text=True,
                        timeout=timeout)
  print(f'{time.monotonic() - start:6.1f} s  {command}')
  assert done.returncode == 0, f'{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
  return done


PRODUCED = [c for c in COMMANDS if any(p in c for p in PRODUCERS)]
RUNNABLE = [c for c, (extra, _) in COMMANDS.items() if extra is not None and c not in PRODUCED]
CHECKS = {  # what a command's output must show
    '.venv/bin/python -m effnet_jax.predict --weights efficientnet_lite0.in1k cat.jpg': 'cat',
    '.venv/bin/python -m effnet_jax.tools.summary --model efficientnet_b0': '5,288,548',
}


@pytest.mark.parametrize('command', RUNNABLE)
def test_a_readme_command_runs_as_written(command, workspace):
  """Each command on its own (so the workers share them); the ones whose output others read
  (converted weights, generated images) ran in the workspace fixture, as written too."""
  out = run(command, workspace).stdout
  assert CHECKS.get(command, '') in out, out


def run_python(code: str, ws, timeout=600) -> str:
  done = subprocess.run([sys.executable, '-c', code], cwd=ws, env=environment(ws),
                        capture_output=True, text=True, timeout=timeout)
  assert done.returncode == 0, f'{code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
  return done.stdout


# README's Python blocks, with tiny overrides (old text -> new text)
PYTHON_TINY = {'jnp.zeros((8, 300, 300, 3))': 'jnp.zeros((2, 64, 64, 3))'}


README_PYTHON = fenced(open(README).read(), 'python')


@pytest.mark.parametrize('block', README_PYTHON,
                         ids=[f'block{i}' for i in range(len(README_PYTHON))])
def test_a_readme_python_block_runs(block, workspace):
  for old, new in PYTHON_TINY.items():
    block = block.replace(old, new)
  run_python(block, workspace)


@pytest.mark.long
def test_the_backbone_example_trains_a_segmentation_head(workspace):
  text = open(os.path.join(ROOT, 'docs', 'weights.md')).read()
  [block] = [b for b in fenced(text, 'python') if 'class SegmentationHead' in b]
  out = run_python(block, workspace)
  before, after = [float(x) for x in re.findall(r'IoU \w+ ([0-9.]+)', out)]
  assert after > 0.8 and after > before + 0.3, out
