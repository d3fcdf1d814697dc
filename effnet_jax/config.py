"""The run configuration schema (every key a config file may set, with its default) and the
loader of config files.

Config files (``configs/*.py``) start from :func:`base_config` and change what their recipe
needs. The schema is locked, so setting a key it lacks — a typo in a file
(``c.optimizer.learning_rat = 0.1``, ``c.data.update(sorce='folder')``) or in a
``--config.key=value`` flag — is an error naming the closest valid key; a config that needs keys
of its own adds them explicitly (``with c.unlocked():``) or builds its own schema, as the
ablation configs do (effnet_jax/analysis/configs.py). :func:`load_config_file` turns every way a
config file can fail into a :class:`ConfigFileError` of one line naming the file and line.

The config files of the repository ship with the package (pyproject.toml installs ``configs/`` as
``effnet_jax/configs``), so an installed ``effnet-train --config configs/efficientnet.py`` runs in
any directory: a ``configs/...`` path that the working directory lacks names the shipped file.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import re
import traceback
import types
import typing

import ml_collections
from ml_collections import config_dict

# ModelConfig fields the trainer sets itself (from the data set, the mesh and config.dtype; it
# trains classifiers, not backbones), and the input metadata a config sets in ``input`` instead.
_TRAINER_SET = ('name', 'family', 'num_classes', 'dtype', 'bn_axis_name', 'out_indices')
_INPUT_METADATA = ('image_size', 'eval_image_size', 'crop_fraction', 'crop_mode', 'interpolation',
                   'mean', 'std')

# Keys of the earlier config layout -> where the setting is now. A config or flag that sets an
# old key fails with a message naming the new one; a saved config of that layout is read in
# today's by upgrade_layout. (Top-level keys first: a set model override wins over them.)
MOVED_KEYS = {
    'image_size': 'input.image_size', 'eval_image_size': 'input.eval_image_size',
    'model_overrides.train_size': 'input.image_size',
    'model_overrides.eval_size': 'input.eval_image_size',
    'model_overrides.crop_fraction': 'input.crop_fraction',
    'model_overrides.crop_mode': 'input.crop_mode',
    'model_overrides.interpolation': 'input.interpolation',
    'model_overrides.mean': 'input.mean', 'model_overrides.std': 'input.std',
    'augment.train_crop': 'input.train_crop', 'augment.area_range': 'input.area_range',
    'augment.aspect_range': 'input.aspect_range',
    'augment.min_object_covered': 'input.min_object_covered',
    'augment.pad_pixels': 'input.pad_pixels',
}
_MOVED_BY_NAME = {old.rsplit('.', 1)[-1]: new for old, new in MOVED_KEYS.items()}


def _field_type(hint) -> type:
  """The type a config placeholder holds for a dataclass field's type hint (``X | None`` -> X)."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  hint = args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
      else hint
  origin = typing.get_origin(hint)
  return origin if origin is not None else hint


def section(cls, fields: typing.Sequence[str] | None = None, inherit: typing.Sequence[str] = ()
            ) -> ml_collections.ConfigDict:
  """A config section whose keys and defaults are those of dataclass ``cls`` (``fields``: a
  subset, in that order). A field whose default is None, or that is named in ``inherit``, is an
  unset entry (None = inherit: the model's value, or the field's documented fallback)."""
  hints = typing.get_type_hints(cls)
  by_name = {f.name: f for f in dataclasses.fields(cls)}
  values = {}
  for name in fields or list(by_name):
    field = by_name[name]
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
      default = field.default_factory()
    if name in inherit or default is None or default is dataclasses.MISSING:
      values[name] = config_dict.placeholder(_field_type(hints[name]))
    else:
      values[name] = default
  return ml_collections.ConfigDict(values)


def model_overrides_schema() -> ml_collections.ConfigDict:
  """One unset (None) entry per overridable architecture field of ModelConfig, plus compound
  scaling's phi, alpha, beta, gamma: ``--config.model_overrides.width_mult=0.5`` works, a typo
  does not. The input metadata (sizes, crop, interpolation, mean/std) is set in ``input``."""
  from effnet_jax.models.registry import ModelConfig  # (imports jax: not to report a bad flag)
  fields = {f.name: config_dict.placeholder(type(f.default))
            for f in dataclasses.fields(ModelConfig)
            if f.name not in _TRAINER_SET + _INPUT_METADATA}
  fields.update({k: config_dict.placeholder(float) for k in ('phi', 'alpha', 'beta', 'gamma')})
  return ml_collections.ConfigDict(fields)


def set_overrides(config: ml_collections.ConfigDict) -> dict:
  """The model overrides a config actually sets (entries left at None are dropped)."""
  return {k: v for k, v in config.model_overrides.to_dict().items() if v is not None}


def base_config() -> ml_collections.ConfigDict:
  """The schema with its defaults, locked: a key it lacks cannot be set (see the module doc).

  One section per concern, each with the keys and defaults of the dataclass it configures;
  None means "inherit" (the model's value, or the fallback the comment names)."""
  from effnet_jax.data.config import DataConfig, Preprocessing
  from effnet_jax.train.curriculum import CurriculumConfig
  from effnet_jax.train.optim import OptimizerConfig, ScheduleConfig
  from effnet_jax.train.step import TrainStepConfig

  c = ml_collections.ConfigDict()
  c.model = 'efficientnet_b0'
  # effnet_jax.models.ModelConfig architecture fields (width_mult, phi, drop_path_rate,
  # bn_momentum, ...); None = the registered model's value.
  c.model_overrides = model_overrides_schema()
  c.seed = 0
  # Fine-tuning: a pretrained directory or training workdir whose weights start a fresh run (the
  # classifier is re-initialised for another number of classes); a resumed run ignores it.
  c.init_from = config_dict.placeholder(str)

  c.data = section(DataConfig)  # where the examples come from
  # How an image becomes a model input, train and eval (effnet_jax.data.Preprocessing): the
  # image sizes, the eval crop, interpolation and normalization (None: the model's metadata) and
  # the train crop.
  c.input = section(Preprocessing, INPUT_FIELDS, inherit=INHERITED_INPUT_FIELDS)
  # Augmentation: flips and the policy on the host (or on the device), then mixing and label
  # smoothing in the train step.
  c.augment = section(Preprocessing, AUGMENT_FIELDS)
  c.augment.update(section(TrainStepConfig, STEP_AUGMENT_FIELDS))
  # Progressive learning (effnet_jax/train/curriculum.py, docs/curriculum.md): train in
  # num_stages equal parts of the run at growing image size and regularization. The final stage
  # uses input.image_size / augment.* / dropout as set above; num_stages <= 1 = fixed size.
  c.curriculum = section(CurriculumConfig)
  c.compilation_cache_dir = config_dict.placeholder(str)  # persistent XLA cache; None = off

  c.batch_size = 2048  # global, over all devices and hosts
  c.eval_batch_size = config_dict.placeholder(int)  # None = batch_size
  c.num_epochs = 350.0
  c.num_train_steps = config_dict.placeholder(int)  # set: overrides num_epochs

  c.optimizer = section(OptimizerConfig)  # effnet_jax.train.optim.create_optimizer
  c.schedule = section(ScheduleConfig)  # effnet_jax.train.optim.learning_rate_schedule
  c.ema_decay = 0.9999  # 0 = no EMA
  c.ema_warmup = True  # decay min(ema_decay, (1 + t) / (10 + t)), TF num_updates semantics

  # None: the model family's official groups; 0: all devices; 1: per device; N: groups of N.
  c.bn_group_size = config_dict.placeholder(int)
  # compute dtype (parameters stay float32); None: bfloat16 on TPU/GPU, float32 on a CPU
  c.dtype = config_dict.placeholder(str)

  c.log_every_steps = 100
  c.eval_every_epochs = 1.0  # 0 = only at the end
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3  # latest N, plus the best by eval/top1
  c.async_checkpoints = True
  c.progress_bar = True
  c.tensorboard = True
  c.lock()
  return c


# The Preprocessing fields of the ``input`` and ``augment`` sections, and the train step's.
INPUT_FIELDS = ('image_size', 'eval_image_size', 'crop_fraction', 'crop_mode', 'interpolation',
                'mean', 'std', 'train_crop', 'area_range', 'aspect_range', 'min_object_covered',
                'pad_pixels')
INHERITED_INPUT_FIELDS = ('image_size', 'eval_image_size', 'crop_fraction', 'crop_mode',
                          'interpolation', 'mean', 'std')
AUGMENT_FIELDS = ('flip', 'augment', 'randaug_num_layers', 'randaug_magnitude',
                  'augment_on_device')
STEP_AUGMENT_FIELDS = ('mixup_alpha', 'cutmix_alpha', 'label_smoothing')


def upgrade_layout(config: dict) -> dict:
  """A config saved as JSON (a checkpoint's run record) in the earlier layout, in today's: the
  image sizes, eval crop and train crop moved into ``input``, 0 / -1 / '' for "inherit" turned
  into None, comma-separated stage lists into lists. A config of today's layout comes back as
  it is; the argument is not changed."""
  config = copy.deepcopy(dict(config))
  if 'input' in config:
    return config
  moved = {}
  for old, new in MOVED_KEYS.items():
    section, _, key = old.rpartition('.')
    source = config.get(section) or {} if section else config
    if key not in source:
      continue
    value = source.pop(key)
    if not section:
      value = value or None  # the top level's 0 meant "the model's"
    new_key = new.rsplit('.', 1)[-1]
    if moved.get(new_key) is None and (value is not None or new_key not in moved):
      moved[new_key] = value
  config['input'] = moved
  for key, unset in (('init_from', ''), ('compilation_cache_dir', ''), ('eval_batch_size', 0),
                     ('num_train_steps', 0), ('bn_group_size', -1)):
    if config.get(key) == unset:
      config[key] = None
  curriculum = config.get('curriculum') or {}
  for key in ('image_sizes', 'batch_sizes'):
    if isinstance(curriculum.get(key), str):
      curriculum[key] = [int(v) for v in curriculum[key].split(',') if v.strip()] or None
  if curriculum.get('max_image_size') == 0:
    curriculum['max_image_size'] = None
  if curriculum.get('randaug_magnitude_max') == 0:
    curriculum['randaug_magnitude_max'] = None
  for key in ('mixup_alpha_max', 'cutmix_alpha_max', 'dropout_min', 'dropout_max'):
    if curriculum.get(key) is not None and curriculum[key] < 0:
      curriculum[key] = None
  return config


def parse_config_arg(arg: str | None) -> dict[str, str]:
  """``'data=imagenet,variant=b0,runlocal'`` -> ``{'data': 'imagenet', 'variant': 'b0',
  'runlocal': 'True'}`` (big_vision's config-argument convention)."""
  if not arg:
    return {}
  out = {}
  for item in arg.split(','):
    if not item:
      continue
    key, _, value = item.partition('=')
    out[key.strip()] = value.strip() if value else 'True'
  return out


class ConfigArgumentError(ValueError):
  """A config argument (``--config file.py:ARG``) the config file does not accept."""


def check_arg_keys(args: dict[str, str], allowed: dict[str, tuple[str, ...]]) -> None:
  """Rejects unknown config-argument keys or values with the valid ones listed."""
  for key, value in args.items():
    if key not in allowed:
      valid = f'valid: {sorted(allowed)}' if allowed else 'this config takes none'
      raise ConfigArgumentError(f'unknown config argument {key!r}; {valid}')
    if allowed[key] and value not in allowed[key]:
      raise ConfigArgumentError(f'config argument {key}={value!r}; valid values: '
                                f'{allowed[key]}')


class ConfigFileError(Exception):
  """A config file that cannot be used (missing, unreadable, broken, a bad config argument, a key
  the schema lacks); the message is one line naming the file (and line). Not a ValueError, so
  absl's flag parser passes it on as it is."""


# ml_collections' errors for a key that a locked ConfigDict lacks: set in a file, or overridden
# by a --config.key=value flag (config_flags' KeyError); both name the closest key (difflib).
_LOCKED = re.compile(r'Key "(?P<key>[^"]*)" does not exist and cannot be added since the config '
                     r'is locked')
_OVERRIDE = re.compile(r"'(?P<key>[^']*)'(\nDid you mean .*)?", re.DOTALL)
_CLOSEST = re.compile(r'Did you mean "(?P<closest>[^"]*)" instead')


def error_message(error: BaseException) -> str:
  """The text of ``error``, unwrapped from the exceptions ml_collections and config_flags nest
  it in (``AttributeError(KeyError('...'))``)."""
  while isinstance(error, (AttributeError, KeyError)) and len(error.args) == 1 and isinstance(
      error.args[0], BaseException):
    error = error.args[0]
  if isinstance(error, (AttributeError, KeyError)) and len(error.args) == 1:
    return str(error.args[0])  # a KeyError's str() is its repr
  return str(error)


def unknown_key_message(message: str, flag: bool = False) -> str | None:
  """ml_collections' multi-line error for an unknown key of a locked config in one line,
  ``unknown config key "learning_rat". Did you mean "base_learning_rate"?``; None for any
  other message. ``flag``: also read config_flags' error for an unknown ``--config.key``."""
  match = _LOCKED.search(message) or (_OVERRIDE.fullmatch(message) if flag else None)
  if match is None:
    return None
  key = match['key'].rsplit('.', 1)[-1]
  if key in _MOVED_BY_NAME:
    return f'config key "{match["key"]}" has moved: set "{_MOVED_BY_NAME[key]}" instead'
  closest = _CLOSEST.search(message)
  return f'unknown config key "{match["key"]}"' + (
      f'. Did you mean "{closest["closest"]}"?' if closest else '')


def shipped_configs() -> str:
  """The directory of the config files that come with this copy of effnet_jax: the checkout's
  ``configs/`` beside the package, or their copy inside an installed package."""
  package = os.path.dirname(os.path.abspath(__file__))
  installed = os.path.join(package, 'configs')
  return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(package),
                                                                 'configs')


def _config_path(path: str) -> str:
  """``path``, or the shipped config file it names when it is a ``configs/...`` path that the
  working directory lacks."""
  parts = os.path.normpath(path).split(os.sep)
  if os.path.exists(path) or len(parts) < 2 or parts[0] != 'configs':
    return path
  shipped = os.path.join(shipped_configs(), *parts[1:])
  return shipped if os.path.exists(shipped) else path


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of the config file ``spec`` = ``path[:arg]``, locked.

  Every failure is a :class:`ConfigFileError` whose message is one line naming the file: missing
  or unreadable, a syntax error, a bad config argument, a key the schema lacks
  (``path:line: unknown config key "x". Did you mean "y"?``), any other exception raised while
  running it (``path:line: NameError: ...``; that exception is chained as the cause, so its
  traceback can still be shown). A ``configs/...`` path missing from the working directory is
  read from :func:`shipped_configs`."""
  path, *arg = spec.split(':', 1)
  if not path:
    raise ConfigFileError('no config file given')
  path = _config_path(path)
  if os.path.isdir(path):
    raise ConfigFileError(f'{path}: is a directory, not a config file')
  try:
    with open(path, 'rb') as f:
      source = f.read()
  except OSError as error:
    reason = 'no such config file' if isinstance(error, FileNotFoundError) else (
        f'cannot read it: {error.strerror or error}')
    raise ConfigFileError(f'{path}: {reason}') from None
  module = types.ModuleType(os.path.splitext(os.path.basename(path))[0])
  module.__file__ = path
  try:
    exec(compile(source, path, 'exec'), module.__dict__)  # pylint: disable=exec-used
    get_config = module.__dict__.get('get_config')
    config = get_config(*arg) if callable(get_config) else None
  except SyntaxError as error:
    raise ConfigFileError(f'{error.filename}:{error.lineno}: SyntaxError: {error.msg}') from None
  except ConfigArgumentError as error:
    raise ConfigFileError(f'{path}: {error}') from None
  except Exception as error:  # pylint: disable=broad-except
    where = _line_of(path, error)
    unknown = unknown_key_message(error_message(error))
    if unknown:
      raise ConfigFileError(f'{where}: {unknown}') from None
    raise ConfigFileError(f'{where}: {type(error).__name__}: {" ".join(str(error).split())}'
                          ) from error
  if not callable(get_config):
    raise ConfigFileError(f'{path}: defines no get_config(arg)')
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigFileError(f'{path}: get_config returned {type(config).__name__}, not a '
                          'ConfigDict')
  config.lock()
  return config


def _line_of(path: str, error: Exception) -> str:
  """``path:line`` of the innermost line of the config file ``path`` that ``error`` came
  through."""
  here = os.path.abspath(path)
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == here]
  return f'{path}:{lines[-1]}' if lines else path
