"""Every config file: loads, locks, names a registered model, documents launch and result; the
family configs (configs/<family>.py:variant=...) once per variant; the loader's one-line errors
for a config file that cannot be used."""
import glob
import importlib.util
import math
import os
import re

import pytest

from effnet_jax import recipes
from effnet_jax.config import ConfigFileError, base_config, load_config_file, set_overrides
from effnet_jax.models import get_model_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))
ABLATIONS = sorted(glob.glob(os.path.join(REPO, 'configs', 'ablations', '*.py')))
FAMILY_FILES = tuple(f'{family}.py' for family in recipes.FAMILIES)  # take variant=...
EMBEDDED_ONLY = ('default.py', 'curriculum_smoke.py')  # configs of the embedded data set only
FOLDER_ONLY = ('finetune_folder.py',)  # fine-tuning on an image folder (no data= argument)
SINGLE = [c for c in CONFIGS if not c.endswith(FAMILY_FILES)]
VARIANTS = [(family, variant) for family, entry in recipes.FAMILIES.items()
            for variant in entry.variants]
V2_TWINS = [('efficientnetv2', v) for v in recipes.EFFICIENTNETV2_VARIANTS]  # progressive=false


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def family_file(family):
  return os.path.join(REPO, 'configs', f'{family}.py')


def variant_id(case):
  return f'{case[0]}:{case[1]}' + (',progressive=false' if case[2:] else '')


def test_every_config_file_is_a_family_config_or_a_single_job():
  assert {os.path.basename(c) for c in CONFIGS} == set(FAMILY_FILES) | {
      os.path.basename(c) for c in SINGLE}
  assert {os.path.basename(c) for c in SINGLE} == set(EMBEDDED_ONLY + FOLDER_ONLY)


def test_every_required_recipe_exists():
  models = {recipes.FAMILIES[family].models[variant] for family, variant in VARIANTS}
  required = ({f'efficientnet_b{i}' for i in range(8)} | {'efficientnetv2_s', 'efficientnetv2_m',
              'efficientnetv2_l'} | {f'rexnet_{w}' for w in (100, 130, 150, 200, 300)}
              | {'resnet50', 'mobilenetv2_100', 'swin_tiny_patch4_window7_224'})
  assert required <= models
  assert os.path.exists(os.path.join(REPO, 'configs', 'default.py'))
  for model in models:
    assert recipes.family_of(model) is not None
    assert recipes.model_recipe(model).model == model
  assert recipes.model_recipe('efficientnet_lite0') is None  # no official recipe


def variant_rows(doc):
  """The variant table of a family config's docstring: variant -> (model, the rest of its row)."""
  rows = re.findall(r'^  (\w+) +(\w+) +(.*\d %.*)$', doc, re.MULTILINE)
  return {variant: (model, rest) for variant, model, rest in rows}


@pytest.mark.parametrize('family', list(recipes.FAMILIES))
def test_family_config_documents_every_variant_and_only_those(family):
  doc = load(family_file(family)).__doc__
  assert 'python -m effnet_jax.main' in doc and 'Expected' in doc
  rows = variant_rows(doc)
  assert list(rows) == list(recipes.FAMILIES[family].variants)
  for variant, (model, rest) in rows.items():
    assert model == recipes.FAMILIES[family].models[variant]
    assert re.search(r'\d+\.\d %', rest), rest  # its expected top-1


def check_loaded(config, arg, embedded_only=False):
  assert config.is_locked
  model = get_model_config(config.model, **set_overrides(config))  # overrides are valid
  assert config.batch_size > 0 and config.num_epochs > 0
  if 'data=embedded' in (arg or '') or embedded_only:
    assert config.data.source == 'embedded' and config.dtype == 'float32'
  else:
    assert config.data.name == 'imagenet2012' and config.data.eval_split == 'validation'
    assert config.input.image_size is None  # the model's own train size
    assert model.image_size >= 192


@pytest.mark.parametrize('path', SINGLE, ids=os.path.basename)
def test_single_config_loads_and_documents_itself(path):
  module = load(path)
  assert 'python -m effnet_jax.main' in module.__doc__ and 'Expected' in module.__doc__
  config = module.get_config(None)
  if path.endswith(FOLDER_ONLY):
    assert config.is_locked
    get_model_config(config.model, **set_overrides(config))
    assert config.data.source == 'folder' and '--config.init_from=' in module.__doc__
    assert '--config.data.train_folder=' in module.__doc__ and config.num_epochs > 0
    return
  check_loaded(config, None, embedded_only=True)


@pytest.mark.parametrize('case', VARIANTS + [c + ('fixed',) for c in V2_TWINS], ids=variant_id)
def test_variant_loads_on_either_data_set(case):
  family, variant, *fixed = case
  module = load(family_file(family))
  base = f'variant={variant}' + (',progressive=false' if fixed else '')
  for arg in [base, f'{base},data=imagenet', f'{base},data=embedded']:
    config = module.get_config(arg)
    check_loaded(config, arg)
    assert config.model == recipes.FAMILIES[family].models[variant]
  assert module.get_config(base).to_dict() == module.get_config(
      f'{base},data=imagenet').to_dict()  # imagenet is the default


@pytest.mark.parametrize('family', list(recipes.FAMILIES))
def test_family_config_rejects_unknown_arguments(family):
  module = load(family_file(family))
  variant = recipes.FAMILIES[family].variants[0]
  with pytest.raises(ValueError, match='valid'):
    module.get_config(f'variant={variant},data=cifar')
  with pytest.raises(ValueError, match='unknown config argument'):
    module.get_config(f'variant={variant},runlocal')
  with pytest.raises(ValueError, match=re.escape(f"variant='b9x'; valid values: "
                                                 f"{recipes.FAMILIES[family].variants}")):
    module.get_config('variant=b9x')
  with pytest.raises(ValueError, match='variant is required; valid values'):
    module.get_config(None)
  with pytest.raises(ValueError, match='variant is required'):
    module.get_config('data=embedded')


def test_official_hyper_parameters():
  b0 = load(family_file('efficientnet')).get_config('variant=b0')
  assert (b0.optimizer.name, b0.optimizer.base_learning_rate, b0.batch_size) == (
      'rmsprop_tf', 0.016, 2048)
  assert (b0.schedule.decay_rate, b0.schedule.decay_epochs, b0.schedule.warmup_epochs) == (
      0.97, 2.4, 5.0)
  assert (b0.optimizer.weight_decay, b0.optimizer.weight_decay_exclude, b0.ema_decay) == (
      1e-5, 'bn', 0.9999)
  v2m = load(family_file('efficientnetv2')).get_config('variant=m')
  assert (v2m.augment.augment, v2m.augment.randaug_magnitude, v2m.augment.mixup_alpha) == (
      'randaugment', 15.0, 0.2)
  assert v2m.optimizer.weight_decay_exclude == 'bn_and_bias' and v2m.batch_size == 4096
  rx = load(family_file('rexnet')).get_config('variant=100')
  assert (rx.optimizer.name, rx.optimizer.nesterov, rx.schedule.name, rx.batch_size) == (
      'sgd', True, 'cosine', 512)
  assert rx.optimizer.base_learning_rate * rx.batch_size / 256 == pytest.approx(0.5)


@pytest.mark.parametrize('variant', list(recipes.EFFICIENTNETV2_VARIANTS))
def test_progressive_variants_and_their_fixed_twins(variant):
  from effnet_jax.train.curriculum import build_stages
  module = load(family_file('efficientnetv2'))
  config = module.get_config(f'variant={variant}')
  fixed = module.get_config(f'variant={variant},progressive=false')
  model = get_model_config(config.model)
  stages = build_stages(config.curriculum, total_steps=107336, batch_size=config.batch_size,
                        image_size=model.image_size,
                        randaug_magnitude=config.augment.randaug_magnitude,
                        mixup_alpha=config.augment.mixup_alpha,
                        cutmix_alpha=config.augment.cutmix_alpha,
                        dropout_rate=model.dropout_rate)
  _, row = variant_rows(module.__doc__)[variant]
  documented = [int(size) for size in row.split()[0].split('/')]  # the stage sizes column
  assert [s.image_size for s in stages] == documented
  assert fixed.curriculum.num_stages == 0
  config.curriculum.num_stages = 0
  assert config.to_dict() == fixed.to_dict()  # the twins differ only in the curriculum


def test_paper_curriculum_values():
  module = load(family_file('efficientnetv2'))
  paper = module.get_config('variant=s,curriculum=paper')
  assert (paper.curriculum.schedule, paper.curriculum.randaug_magnitude_max,
          paper.curriculum.dropout_min, paper.curriculum.dropout_max) == ('paper', 15.0, 0.1, 0.3)
  assert math.isclose(module.get_config('variant=m,curriculum=paper').curriculum.mixup_alpha_max,
                      0.2)
  assert module.get_config('variant=s,curriculum=code').to_dict() == module.get_config(
      'variant=s').to_dict()
  with pytest.raises(ValueError, match='curriculum'):
    module.get_config('variant=s,curriculum=linear')
  with pytest.raises(ValueError, match='progressive=false'):
    module.get_config('variant=s,progressive=false,curriculum=paper')
  with pytest.raises(ValueError, match="progressive='no'; valid values"):
    module.get_config('variant=s,progressive=no')


def documented_arguments(path):
  """The config arguments the docstring's commands give ``path``
  (``--config configs/x.py:data=embedded``)."""
  name = os.path.relpath(path, REPO)
  return sorted(set(re.findall(rf'--config {re.escape(name)}:([\w=,.]+)', load(path).__doc__)))


def check_as_documented(path, args):
  name = os.path.relpath(path, REPO)
  for arg in args:
    config = load(path).get_config(arg)
    spec = f'{name}:{arg}' if arg else name
    assert config.is_locked, spec  # so a key the file sets by mistake is an error in the file
    loaded = load_config_file(os.path.join(REPO, spec))  # as the command lines load it
    assert loaded.is_locked and loaded.to_dict() == config.to_dict()


@pytest.mark.parametrize('path', SINGLE + ABLATIONS,
                         ids=lambda path: os.path.relpath(path, os.path.join(REPO, 'configs')))
def test_every_config_file_loads_as_documented_and_locked(path):
  check_as_documented(path, [None] + documented_arguments(path))


@pytest.mark.parametrize('case', VARIANTS, ids=variant_id)
def test_every_variant_loads_as_documented_and_locked(case):
  """Each command of the family's docstring, with its variant replaced by this one where the
  command's other arguments apply to it."""
  family, variant = case
  path = family_file(family)
  arguments = documented_arguments(path)
  assert arguments and all(re.match(r'variant=\w+', a) for a in arguments)
  check_as_documented(path, sorted({re.sub(r'^variant=\w+', f'variant={variant}', a)
                                    for a in arguments}))


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


def test_a_configs_path_missing_from_the_working_directory_reads_the_shipped_config(
    tmp_path, monkeypatch):
  """``configs/...`` run in another directory names the config shipped with the package (here
  the checkout's); a file of the working directory comes first."""
  monkeypatch.chdir(tmp_path)
  shipped = os.path.join(REPO, 'configs', 'efficientnet.py')
  with pytest.raises(ConfigFileError,
                     match=f"^{re.escape(shipped)}: config argument variant='b9'"):
    load_config_file('configs/efficientnet.py:variant=b9')
  with pytest.raises(ConfigFileError, match='^configs/nonexistent.py: no such config file$'):
    load_config_file('configs/nonexistent.py')
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'efficientnet.py').write_text('x = 1\n')
  with pytest.raises(ConfigFileError, match=re.escape('configs/efficientnet.py: defines no '
                                                      'get_config(arg)')):
    load_config_file('configs/efficientnet.py')


@pytest.mark.parametrize('line, old, new', [
    ('c.image_size = 32', 'image_size', 'input.image_size'),
    ('c.eval_image_size = 32', 'eval_image_size', 'input.eval_image_size'),
    ('c.augment.train_crop = "none"', 'train_crop', 'input.train_crop'),
    ('c.model_overrides.train_size = 64', 'train_size', 'input.image_size'),
])
def test_a_key_of_the_earlier_layout_names_its_new_place(tmp_path, line, old, new):
  from effnet_jax.config import ConfigFileError, load_config_file
  path = tmp_path / 'old.py'
  path.write_text('from effnet_jax.config import base_config\n\n'
                  f'def get_config(arg=None):\n  c = base_config()\n  {line}\n  return c\n')
  with pytest.raises(ConfigFileError, match=rf'old.py:5: config key "{old}" has moved: set '
                                            rf'"{new}" instead'):
    load_config_file(str(path))


def test_sections_take_their_defaults_from_the_dataclasses_they_configure():
  import dataclasses

  from effnet_jax.config import base_config
  from effnet_jax.data import DataConfig
  from effnet_jax.train.curriculum import CurriculumConfig
  from effnet_jax.train.optim import OptimizerConfig, ScheduleConfig
  c = base_config()
  for section, cls in [(c.data, DataConfig), (c.curriculum, CurriculumConfig),
                       (c.optimizer, OptimizerConfig), (c.schedule, ScheduleConfig)]:
    assert section.to_dict() == dataclasses.asdict(cls())
  assert c.input.image_size is None and c.input.crop_fraction is None  # None: the model's
  assert c.bn_group_size is None and c.num_train_steps is None and c.init_from is None


def test_a_run_record_of_the_earlier_layout_reads_in_todays():
  """A checkpoint's saved config in the earlier layout: sizes and crops moved into input,
  0 / -1 / '' for inherit become None, comma lists become lists; today's layout is kept."""
  import json

  from effnet_jax.config import upgrade_layout
  old = {'model': 'efficientnet_b0', 'image_size': 40, 'eval_image_size': 0,
         'model_overrides': {'phi': -10.0, 'crop_fraction': 1.0, 'train_size': None},
         'augment': {'train_crop': 'none', 'area_range': [0.08, 1.0], 'flip': True},
         'curriculum': {'image_sizes': '16,24,32', 'batch_sizes': '', 'max_image_size': 0,
                        'randaug_magnitude_max': 0.0, 'mixup_alpha_max': -1.0,
                        'dropout_min': -1.0, 'dropout_max': 0.3},
         'init_from': '', 'num_train_steps': 0, 'eval_batch_size': 0, 'bn_group_size': -1}
  new = upgrade_layout(old)
  assert new['input'] == {'image_size': 40, 'eval_image_size': None, 'crop_fraction': 1.0,
                          'train_crop': 'none', 'area_range': [0.08, 1.0]}
  assert new['model_overrides'] == {'phi': -10.0} and new['augment'] == {'flip': True}
  assert new['curriculum'] == {'image_sizes': [16, 24, 32], 'batch_sizes': None,
                               'max_image_size': None, 'randaug_magnitude_max': None,
                               'mixup_alpha_max': None, 'dropout_min': None, 'dropout_max': 0.3}
  assert all(new[k] is None for k in ('init_from', 'num_train_steps', 'eval_batch_size',
                                      'bn_group_size'))
  assert old['image_size'] == 40 and 'input' not in old  # the argument is not changed
  today = json.loads(base_config().to_json())
  assert upgrade_layout(today) == today
