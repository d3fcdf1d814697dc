"""Every config file: loads, locks, names a registered model, documents launch and result; the
loader's one-line errors for a config file that cannot be used."""
import glob
import importlib.util
import os
import re

import pytest

from effnet_jax.config import ConfigFileError, base_config, load_config_file, set_overrides
from effnet_jax.models import get_model_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))
ABLATIONS = sorted(glob.glob(os.path.join(REPO, 'configs', 'ablations', '*.py')))
EMBEDDED_ONLY = ('default.py', 'curriculum_smoke.py')  # configs of the embedded data set only
FOLDER_ONLY = ('finetune_folder.py',)  # fine-tuning on an image folder (no data= argument)
RECIPES = [c for c in CONFIGS if not c.endswith(EMBEDDED_ONLY + FOLDER_ONLY)]


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_required_recipe_exists():
  names = {os.path.basename(c)[:-3] for c in CONFIGS}
  required = ({f'efficientnet_b{i}' for i in range(8)} | {'efficientnetv2_s', 'efficientnetv2_m',
              'efficientnetv2_l'} | {f'rexnet_{w}' for w in (100, 130, 150, 200, 300)} |
              {'default'})
  assert required <= names


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads_and_documents_itself(path):
  module = load(path)
  assert 'python -m effnet_jax.main' in module.__doc__ and 'Expected' in module.__doc__
  embedded_only = path.endswith(EMBEDDED_ONLY)
  if path.endswith(FOLDER_ONLY):
    config = module.get_config(None)
    assert config.is_locked
    get_model_config(config.model, **set_overrides(config))
    assert config.data.source == 'folder' and '--config.init_from=' in module.__doc__
    assert '--config.data.train_folder=' in module.__doc__ and config.num_epochs > 0
    return
  variants = [None] if embedded_only else [None, 'data=imagenet', 'data=embedded']
  for arg in variants:
    config = module.get_config(arg)
    assert config.is_locked
    model = get_model_config(config.model, **set_overrides(config))  # overrides are valid
    assert config.batch_size > 0 and config.num_epochs > 0
    if arg == 'data=embedded' or arg is None and embedded_only:
      assert config.data.source == 'embedded' and config.dtype == 'float32'
    elif arg is not None or not embedded_only:
      assert config.data.name == 'imagenet2012' and config.data.eval_split == 'validation'
      assert config.input.image_size is None  # the model's own train size
      assert model.train_size >= 192


@pytest.mark.parametrize('path', RECIPES, ids=os.path.basename)
def test_recipe_rejects_unknown_arguments(path):
  with pytest.raises(ValueError, match='valid'):
    load(path).get_config('data=cifar')
  with pytest.raises(ValueError, match='unknown config argument'):
    load(path).get_config('runlocal')


def test_official_hyper_parameters():
  b0 = load(os.path.join(os.path.dirname(CONFIGS[0]), 'efficientnet_b0.py')).get_config()
  assert (b0.optimizer.name, b0.optimizer.base_learning_rate, b0.batch_size) == (
      'rmsprop_tf', 0.016, 2048)
  assert (b0.schedule.decay_rate, b0.schedule.decay_epochs, b0.schedule.warmup_epochs) == (
      0.97, 2.4, 5.0)
  assert (b0.optimizer.weight_decay, b0.optimizer.weight_decay_exclude, b0.ema_decay) == (
      1e-5, 'bn', 0.9999)
  v2m = load(os.path.join(os.path.dirname(CONFIGS[0]), 'efficientnetv2_m.py')).get_config()
  assert (v2m.augment.augment, v2m.augment.randaug_magnitude, v2m.augment.mixup_alpha) == (
      'randaugment', 15.0, 0.2)
  assert v2m.optimizer.weight_decay_exclude == 'bn_and_bias' and v2m.batch_size == 4096
  rx = load(os.path.join(os.path.dirname(CONFIGS[0]), 'rexnet_100.py')).get_config()
  assert (rx.optimizer.name, rx.optimizer.nesterov, rx.schedule.name, rx.batch_size) == (
      'sgd', True, 'cosine', 512)
  assert rx.optimizer.base_learning_rate * rx.batch_size / 256 == pytest.approx(0.5)


def test_progressive_configs_and_their_fixed_twins():
  import math
  from effnet_jax.train.curriculum import build_stages
  here = os.path.dirname(CONFIGS[0])
  for name, sizes in [('efficientnetv2_s', [171, 214, 257, 300]),
                      ('efficientnetv2_m', [192, 256, 320, 384]),
                      ('efficientnetv2_b3', [156, 184, 212, 240])]:
    config = load(os.path.join(here, f'{name}.py')).get_config()
    fixed = load(os.path.join(here, f'{name}_fixed.py')).get_config() if 'b3' not in name else None
    model = get_model_config(config.model)
    stages = build_stages(config.curriculum, total_steps=107336, batch_size=config.batch_size,
                          image_size=model.train_size,
                          randaug_magnitude=config.augment.randaug_magnitude,
                          mixup_alpha=config.augment.mixup_alpha,
                          cutmix_alpha=config.augment.cutmix_alpha,
                          dropout_rate=model.dropout_rate)
    assert [s.image_size for s in stages] == sizes
    if fixed is not None:
      assert fixed.curriculum.num_stages == 0
      config.curriculum.num_stages = 0
      assert config.to_dict() == fixed.to_dict()  # the twins differ only in the curriculum
  paper = load(os.path.join(here, 'efficientnetv2_s.py')).get_config('curriculum=paper')
  assert (paper.curriculum.schedule, paper.curriculum.randaug_magnitude_max,
          paper.curriculum.dropout_min, paper.curriculum.dropout_max) == ('paper', 15.0, 0.1, 0.3)
  assert math.isclose(load(os.path.join(here, 'efficientnetv2_m.py')).get_config(
      'curriculum=paper').curriculum.mixup_alpha_max, 0.2)
  with pytest.raises(ValueError, match='curriculum'):
    load(os.path.join(here, 'efficientnetv2_s.py')).get_config('curriculum=linear')


def documented_specs(path):
  """``path`` as its docstring launches it: without a config argument, and with every one its
  commands give (``--config configs/x.py:data=embedded``)."""
  name = os.path.relpath(path, REPO)
  arguments = re.findall(rf'--config {re.escape(name)}:([\w=,.]+)', load(path).__doc__)
  return [name] + [f'{name}:{argument}' for argument in sorted(set(arguments))]


@pytest.mark.parametrize('path', CONFIGS + ABLATIONS,
                         ids=lambda path: os.path.relpath(path, os.path.join(REPO, 'configs')))
def test_every_config_file_loads_as_documented_and_locked(path):
  for spec in documented_specs(path):
    _, _, arg = spec.partition(':')
    config = load(path).get_config(arg or None)
    assert config.is_locked, spec  # so a key the file sets by mistake is an error in the file
    loaded = load_config_file(os.path.join(REPO, spec))  # as the command lines load it
    assert loaded.is_locked and loaded.to_dict() == config.to_dict()


def test_a_config_adds_keys_only_explicitly():
  c = base_config()
  with pytest.raises(AttributeError, match='Did you mean "base_learning_rate"'):
    c.optimizer.learning_rat = 0.1
  with pytest.raises(KeyError, match='Did you mean "source"'):
    c.data.update(sorce='folder')
  with c.unlocked():
    c.note = 'a key of this config only'
  assert c.is_locked and c.note == 'a key of this config only'


CONFIG_FILE = """from effnet_jax.config import base_config


def get_config(arg=None):
  c = base_config()
  {line}
  return c
"""


@pytest.mark.parametrize('line, message', [
    ('c.optimizer.learning_rat = 0.1',
     'unknown config key "learning_rat". Did you mean "base_learning_rate"?'),
    ("c.update({'optimizer': {'learning_rat': 0.1}})",
     'unknown config key "learning_rat". Did you mean "base_learning_rate"?'),
    ("c.update_from_flattened_dict({'data.sorce': 'folder'})",
     'unknown config key "sorce". Did you mean "source"?'),
    ('c.model_overrides.phii = 1.0', 'unknown config key "phii". Did you mean "phi"?'),
    ('c.learning_rate_warmup = 1.0', 'unknown config key "learning_rate_warmup"'),
    ("c.batch_size = 'many'", "TypeError: Could not override field 'batch_size' (reference). "
     "many is of original type <class 'str'> and cannot be casted to type <class 'int'>"),
    ("c.batch_size = {'b0': 8}[arg]", "KeyError: None"),
], ids=['attribute', 'nested_update', 'flattened_update', 'model_override', 'no_close_key',
        'wrong_type', 'python_error'])
def test_an_error_inside_a_config_file_is_one_line_naming_file_and_line(line, message, tmp_path):
  path = tmp_path / 'config.py'
  path.write_text(CONFIG_FILE.format(line=line))
  with pytest.raises(ConfigFileError) as error:
    load_config_file(str(path))
  assert str(error.value) == f'{path}:6: {message}'
  # a typo's traceback says nothing more; another exception's is kept (--verbosity shows it)
  assert (error.value.__cause__ is None) == message.startswith('unknown config key')


@pytest.mark.parametrize('text, spec, message', [
    (None, 'missing.py', 'missing.py: no such config file'),
    (None, '', 'no config file given'),
    ('def get_config(arg=None)\n  return None\n', 'config.py',
     "config.py:1: SyntaxError: expected ':'"),
    ('CONFIG = 1\n', 'config.py', 'config.py: defines no get_config(arg)'),
    ('def get_config(arg=None):\n  return {}\n', 'config.py',
     'config.py: get_config returned dict, not a ConfigDict'),
    (CONFIG_FILE.format(line="check_arg_keys(parse_config_arg(arg), {'data': ('tfds',)})").replace(
        'import base_config', 'import base_config, check_arg_keys, parse_config_arg'),
     'config.py:data=tdfs', "config.py: config argument data='tdfs'; valid values: ('tfds',)"),
], ids=['missing', 'no_path', 'syntax_error', 'no_get_config', 'not_a_config_dict',
        'bad_config_argument'])
def test_a_config_file_that_cannot_be_used_is_one_line(text, spec, message, tmp_path,
                                                       monkeypatch):
  monkeypatch.chdir(tmp_path)
  if text is not None:
    (tmp_path / 'config.py').write_text(text)
  with pytest.raises(ConfigFileError, match=f'^{re.escape(message)}$'):
    load_config_file(spec)
