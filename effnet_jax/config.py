"""The run configuration schema (every key a config file may set, with its default) and the
loader of config files.

Config files (``configs/*.py``) start from :func:`base_config` and change what their recipe
needs. The schema is locked, so setting a key it lacks — a typo in a file
(``c.optimizer.learning_rat = 0.1``, ``c.data.update(sorce='folder')``) or in a
``--config.key=value`` flag — is an error naming the closest valid key; a config that needs keys
of its own adds them explicitly (``with c.unlocked():``) or builds its own schema, as the
ablation configs do (effnet_jax/analysis/configs.py). :func:`load_config_file` turns every way a
config file can fail into a :class:`ConfigFileError` of one line naming the file and line.
"""
from __future__ import annotations

import dataclasses
import os
import re
import traceback
import types

import ml_collections
from ml_collections import config_dict

from effnet_jax.pixel_limit import MAX_IMAGE_PIXELS

# ModelConfig fields the trainer sets itself (from the data set, the mesh and config.dtype).
_TRAINER_SET = ('name', 'family', 'num_classes', 'dtype', 'bn_axis_name')


def model_overrides_schema() -> ml_collections.ConfigDict:
  """One unset (None) entry per overridable ModelConfig field, plus compound scaling's phi,
  alpha, beta, gamma: ``--config.model_overrides.width_mult=0.5`` works, a typo does not."""
  from effnet_jax.models.registry import ModelConfig  # (imports jax: not to report a bad flag)
  fields = {f.name: config_dict.placeholder(type(f.default))
            for f in dataclasses.fields(ModelConfig) if f.name not in _TRAINER_SET}
  fields.update({k: config_dict.placeholder(float) for k in ('phi', 'alpha', 'beta', 'gamma')})
  return ml_collections.ConfigDict(fields)


def set_overrides(config: ml_collections.ConfigDict) -> dict:
  """The model overrides a config actually sets (entries left at None are dropped)."""
  return {k: v for k, v in config.model_overrides.to_dict().items() if v is not None}


def base_config() -> ml_collections.ConfigDict:
  """The schema with its defaults, locked: a key it lacks cannot be set (see the module doc)."""
  c = ml_collections.ConfigDict()
  c.model = 'efficientnet_b0'
  # effnet_jax.models.ModelConfig fields (width_mult, phi, drop_path_rate, bn_momentum, ...);
  # None = the registered model's value.
  c.model_overrides = model_overrides_schema()
  c.seed = 0
  # Fine-tuning: a pretrained directory or training workdir whose weights start a fresh run (the
  # classifier is re-initialised for another number of classes); a resumed run ignores it.
  c.init_from = ''

  # Input: effnet_jax.data.DataConfig fields.
  c.data = ml_collections.ConfigDict(dict(
      source='embedded',  # embedded | tfds | folder
      name='fashion_mnist',  # TFDS name for source=tfds (e.g. imagenet2012)
      data_dir=config_dict.placeholder(str),
      manual_dir=config_dict.placeholder(str),
      train_folder=config_dict.placeholder(str),
      eval_folder=config_dict.placeholder(str),
      train_split='train',
      eval_split='test',
      shuffle_buffer=16384,
      cache=False,
      on_bad_image='error',  # error | skip
      max_image_pixels=MAX_IMAGE_PIXELS,  # larger encoded images count as unreadable
  ))
  c.image_size = 0  # train resolution; 0 = the model's train_size
  c.eval_image_size = 0  # 0 = the model's eval_size

  # Augmentation: effnet_jax.data.Preprocessing fields, plus on-device mixing and smoothing.
  c.augment = ml_collections.ConfigDict(dict(
      train_crop='inception',  # inception | pad_crop | none
      area_range=(0.08, 1.0),
      aspect_range=(3 / 4, 4 / 3),
      min_object_covered=0.1,
      pad_pixels=2,
      flip=True,
      augment='none',  # none | autoaugment | randaugment
      randaug_num_layers=2,
      randaug_magnitude=10.0,
      # RandAugment and normalization inside the train step instead of on the host; the host
      # sends uint8 crops, which frees the host of RandAugment's cost (measured: docs/performance.md)
      augment_on_device=False,
      mixup_alpha=0.0,
      cutmix_alpha=0.0,
      label_smoothing=0.1,
  ))

  # Progressive learning (effnet_jax/train/curriculum.py, docs/curriculum.md): train in
  # num_stages equal parts of the run at growing image size and regularization. The final stage
  # uses image_size / augment.* / dropout as set above; num_stages <= 1 = fixed size.
  c.curriculum = ml_collections.ConfigDict(dict(
      num_stages=0,  # official V2: 4
      schedule='code',  # code (google/automl as released) | paper (EfficientNetV2 Table 6)
      min_image_size=128,  # the official ibase
      max_image_size=0,  # 0 = image_size (the model's train size)
      image_sizes='',  # explicit per-stage sizes, e.g. '128,192,256,300' (wins over the formula)
      size_multiple=0,  # snap stage sizes to a multiple (16, 32) so they form buckets; 0 = exact
      batch_sizes='',  # optional per-stage global batch, e.g. '4096,4096,2048,2048'; the
                       # learning rate follows the per-256 rule and the schedule runs on in epochs
      randaug_magnitude_min=5.0,
      randaug_magnitude_max=0.0,  # 0 = augment.randaug_magnitude
      mixup_alpha_min=0.0,  # also CutMix's minimum
      mixup_alpha_max=-1.0,  # < 0: augment.mixup_alpha
      cutmix_alpha_max=-1.0,  # < 0: augment.cutmix_alpha
      dropout_min=-1.0,  # schedule=paper ramps dropout from here (paper: 0.1); < 0 = constant
      dropout_max=-1.0,  # < 0: the model's dropout_rate
      bucket_mix=False,  # each step trains a random stage size up to the current one (seed, step)
      aot_compile=True,  # compile every bucket's step at start (else lazily, once per bucket)
  ))
  c.compilation_cache_dir = ''  # persistent XLA cache (jax_compilation_cache_dir); '' = off

  c.batch_size = 2048  # global, over all devices and hosts
  c.eval_batch_size = 0  # 0 = batch_size
  c.num_epochs = 350.0
  c.num_train_steps = 0  # > 0 overrides num_epochs

  # Optimizer: effnet_jax.train.optim.create_optimizer arguments.
  c.optimizer = ml_collections.ConfigDict(dict(
      name='rmsprop_tf',  # rmsprop_tf | sgd | adamw | lars
      base_learning_rate=0.016,  # per lr_batch_base images
      lr_batch_base=256,
      momentum=0.9,
      nesterov=False,
      rms_decay=0.9,
      eps=1e-3,
      b1=0.9,
      b2=0.999,
      weight_decay=1e-5,
      weight_decay_mode='coupled',  # coupled (through the loss, official) | decoupled
      weight_decay_exclude='bn',  # bn (official V1) | bn_and_bias (V2, timm) | none
      lars_trust_coefficient=0.001,
      grad_clip_norm=0.0,
  ))
  c.schedule = ml_collections.ConfigDict(dict(
      name='exponential',  # exponential (staircase) | cosine | constant
      warmup_epochs=5.0,
      decay_epochs=2.4,
      decay_rate=0.97,
      min_learning_rate=0.0,
      warmup_init=0.0,
  ))
  c.ema_decay = 0.9999  # 0 = no EMA
  c.ema_warmup = True  # decay min(ema_decay, (1 + t) / (10 + t)), TF num_updates semantics

  # -1: the official recipe's groups; 0: all devices; 1: per device; N: groups of N devices.
  c.bn_group_size = -1
  c.dtype = 'bfloat16'  # compute dtype (parameters stay float32)

  c.log_every_steps = 100
  c.eval_every_epochs = 1.0  # 0 = only at the end
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3  # latest N, plus the best by eval/top1
  c.async_checkpoints = True
  c.progress_bar = True
  c.tensorboard = True
  c.lock()
  return c


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
  closest = _CLOSEST.search(message)
  return f'unknown config key "{match["key"]}"' + (
      f'. Did you mean "{closest["closest"]}"?' if closest else '')


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of the config file ``spec`` = ``path[:arg]``, locked.

  Every failure is a :class:`ConfigFileError` whose message is one line naming the file: missing
  or unreadable, a syntax error, a bad config argument, a key the schema lacks
  (``path:line: unknown config key "x". Did you mean "y"?``), any other exception raised while
  running it (``path:line: NameError: ...``; that exception is chained as the cause, so its
  traceback can still be shown)."""
  path, *arg = spec.split(':', 1)
  if not path:
    raise ConfigFileError('no config file given')
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
