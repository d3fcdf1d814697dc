"""Model registry: names -> (family, architecture + metadata), and the public construction API.

Every model belongs to a :class:`Family`, registered by the family's own module
(``effnet_jax.models.efficientnet``, ``efficientnet_lite``, ``efficientnetv2``, ``rexnet``,
``resnet``): the module defines its blocks, its special cases and its variants; this module and
the rest of the code base only call the family's hooks, so a new family touches no shared code.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from effnet_jax.models import arch as arch_lib
from effnet_jax.models.layers import ACTIVATIONS, DEPTHWISE_IMPLS, PADDINGS, CONV_IMPLS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# float64 (with jax_enable_x64) serves exact numerical comparisons, e.g. weight-conversion checks.
_DTYPES = {'float32': jnp.float32, 'f32': jnp.float32, 'bfloat16': jnp.bfloat16,
           'bf16': jnp.bfloat16, 'float16': jnp.float16, 'f16': jnp.float16,
           'float64': jnp.float64, 'f64': jnp.float64}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Everything that defines a registered model: architecture and preprocessing metadata.

  Every field can be overridden through ``create_model(name, **overrides)``.
  """
  name: str
  family: str  # a registered Family (list_families(): efficientnet, ..., resnet, swin)
  # Architecture (read by the family's hooks; a family may leave fields unused).
  # base block strings; ReXNet: generated from width/depth unless given (final widths, as
  # rexnet.linear_bottleneck_stages writes them)
  stages: tuple[tuple[str, ...], ...] = ()
  width_mult: float = 1.0
  depth_mult: float = 1.0
  stem_channels: int = 32  # Swin: the patch embedding width C (stages: C, 2C, 4C, 8C)
  head_channels: int = 1280
  fix_stem_head: bool = False  # Lite: stem and head widths not scaled
  fix_first_last_repeats: bool = False  # Lite: first/last stage repeats not scaled
  # ResNet: ResNet-D (He et al. 2019): deep 3-conv stem (widths stem/2, stem/2, stem) and 2x2
  # average pooling before the stride-1 projection convs of the shortcuts
  resnet_d: bool = False
  round_limit: float = 0.9  # V1 10 % rule; V2 0.0
  activation: str = 'silu'
  padding: str = 'same'
  bn_momentum: float = 0.99  # Flax/TF convention (running = m * running + (1 - m) * batch)
  bn_eps: float = 1e-3  # Swin (no BatchNorm): its LayerNorm epsilon
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.2
  num_classes: int = 1000
  dtype: str = 'float32'  # compute dtype
  param_dtype: str = 'float32'
  bn_axis_name: str | tuple[str, ...] | None = None  # mesh axes of cross-device BN statistics
  depthwise_impl: str = 'xla'  # xla | unrolled | auto (see layers.LayerConfig)
  conv_impl: str = 'auto'  # xla | dot | auto (see layers.LayerConfig)
  # A backbone: the feature levels (indices into feature_info(config)) the model returns
  # instead of logits; None: the classifier.
  out_indices: tuple[int, ...] | None = None
  # Transformer families (Swin); None / empty: not used by the family.
  patch_size: int | None = None  # side of the non-overlapping patches the image is embedded in
  window_size: int | None = None  # side of the attention windows (in tokens)
  depths: tuple[int, ...] = ()  # blocks per stage
  num_heads: tuple[int, ...] = ()  # attention heads per stage
  # Metadata: how the model is trained and evaluated.
  image_size: int = 224  # train resolution (a training config's input.image_size inherits it)
  eval_image_size: int = 224  # eval resolution (input.eval_image_size inherits it)
  crop_fraction: float = 0.875  # eval centre crop side / shorter image side
  crop_mode: str = 'center'  # center | squash (resize the whole image, no crop)
  interpolation: str = 'bicubic'
  mean: tuple[float, float, float] = IMAGENET_MEAN  # on [0, 1] images
  std: tuple[float, float, float] = IMAGENET_STD

  def resolved_stem_channels(self) -> int:
    """Stem width after the family's scaling rules."""
    return self._hook('stem_channels')

  def resolved_head_channels(self) -> int:
    """Head conv width after the family's scaling rules."""
    return self._hook('head_channels')

  def block_strings(self) -> tuple[tuple[str, ...], ...]:
    """Block strings of the stages before width/depth scaling (see :mod:`arch`)."""
    return self._hook('block_strings')

  def resolved_arch(self) -> tuple[tuple[arch_lib.BlockSpec, ...], ...]:
    """Resolved blocks, one tuple per stage (see ``arch.decode_arch``)."""
    return self._hook('arch')

  def _hook(self, hook: str):
    fn = getattr(get_family(self.family), hook)
    if fn is None:
      raise ValueError(f'{self.name}: the {self.family} family is not a stem/stages/head '
                       f'network (its Family has no {hook} hook)')
    return fn(self)


def official_bn_per_device(num_devices: int) -> int:
  """BN statistics per device: the official recipe of families trained without SyncBN."""
  del num_devices
  return 1


@dataclasses.dataclass(frozen=True)
class Family:
  """A model family: what the shared code needs of it, defined by the family's own module.

  Attributes:
    name: the ``ModelConfig.family`` value of its models.
    build: ``config -> Flax module`` (:func:`build_model` calls it). Stem/stages/head CNNs
      use ``effnet_jax.models.network.build``.
    bn_group_size: ``number of devices -> devices per BatchNorm group`` of the official
      recipe (``bn_group_size`` unset in the training config; ``train.step``).
    weight_layouts: ``{source zoo: naming}`` — the layer-naming scheme of this family's
      weights in each zoo ``tools.convert`` reads (a key of its ``NAMINGS``).
    stem_channels, head_channels, block_strings, arch: ``config -> value`` hooks behind
      ``ModelConfig.resolved_stem_channels``, ``resolved_head_channels``, ``block_strings``,
      ``resolved_arch``; ``None`` for families that are not stem/stages/head networks.
    architecture: ``config -> dict`` of what the weights compute with (compared before
      fine-tuning from other weights); ``None``: the resolve hooks' blocks and widths.
    adapt_variables: ``(variables, weights config, run config) -> variables``: fine-tuning
      from weights of another config of the same ``architecture`` (e.g. Swin's relative
      position bias tables resized to another window) before they are merged into the run's;
      ``None``: the variables load as they are.
    feature_info: ``config -> levels`` (``network.FeatureInfo``: map name, channels,
      reduction) a backbone can return (``create_model(..., features_only=True)``); stem/stages/
      head networks use ``network.feature_levels``; ``None``: no backbone.
  """
  name: str
  build: Callable[[ModelConfig], nn.Module]
  bn_group_size: Callable[[int], int] = official_bn_per_device
  weight_layouts: Mapping[str, str] = dataclasses.field(default_factory=dict)
  stem_channels: Callable[[ModelConfig], int] | None = None
  head_channels: Callable[[ModelConfig], int] | None = None
  block_strings: Callable[[ModelConfig], tuple[tuple[str, ...], ...]] | None = None
  arch: Callable[[ModelConfig], tuple[tuple[arch_lib.BlockSpec, ...], ...]] | None = None
  architecture: Callable[[ModelConfig], dict[str, Any]] | None = None
  feature_info: Callable[[ModelConfig], tuple[Any, ...]] | None = None
  adapt_variables: Callable[[dict[str, Any], ModelConfig, ModelConfig], dict[str, Any]] | None = (
      None)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
  """Makes ``family`` known; its models can then be registered with :func:`register`."""
  if family.name in _FAMILIES:
    raise ValueError(f'model family {family.name!r} registered twice')
  _FAMILIES[family.name] = family
  return family


def get_family(name: str) -> Family:
  """The registered :class:`Family` called ``name``."""
  try:
    return _FAMILIES[name]
  except KeyError:
    raise ValueError(f'unknown model family {name!r}{_closest(name, _FAMILIES)}; families: '
                     f'{", ".join(_FAMILIES)}') from None


def list_families() -> list[str]:
  """Registered family names in registration order."""
  return list(_FAMILIES)


# ModelConfig fields of earlier releases -> their names now (saved weights may still use them).
RENAMED_FIELDS = {'train_size': 'image_size', 'eval_size': 'eval_image_size'}


def renamed_fields(overrides: dict[str, Any]) -> dict[str, Any]:
  """``overrides`` as saved by an earlier release, with today's field names."""
  return {RENAMED_FIELDS.get(k, k): v for k, v in overrides.items()}


_REGISTRY: dict[str, ModelConfig] = {}


def register(config: ModelConfig) -> ModelConfig:
  """Adds a model under ``config.name``; its family must be registered first."""
  get_family(config.family)
  if config.name in _REGISTRY:
    raise ValueError(f'model {config.name!r} registered twice')
  _REGISTRY[config.name] = config
  return config


def list_models(pattern: str | None = None) -> list[str]:
  """Registered model names in registration order, optionally filtered by a substring."""
  return [n for n in _REGISTRY if pattern is None or pattern in n]


def _closest(word: str, choices) -> str:
  close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
  return f'; did you mean {", ".join(close)}?' if close else ''


def get_dtype(name: str):
  try:
    return _DTYPES[name]
  except KeyError:
    raise ValueError(f'unknown dtype {name!r}; expected one of {sorted(_DTYPES)}') from None


def compound_scale(config: ModelConfig, phi: float, alpha: float = arch_lib.ALPHA,
                   beta: float = arch_lib.BETA, gamma: float = arch_lib.GAMMA) -> ModelConfig:
  """Scales a model by compound coefficient φ: width × β^φ, depth × α^φ, sizes × γ^φ."""
  w, d, r = arch_lib.compound_coefficients(phi, alpha, beta, gamma)
  image_size = arch_lib.scaled_resolution(config.image_size, r)
  eval_image_size = arch_lib.scaled_resolution(config.eval_image_size, r)
  return dataclasses.replace(config, name=f'{config.name}_phi{phi:g}',
                             width_mult=config.width_mult * w, depth_mult=config.depth_mult * d,
                             image_size=image_size, eval_image_size=eval_image_size)


def get_model_config(name: str, **overrides) -> ModelConfig:
  """The registered config of ``name`` with ``overrides`` applied.

  ``phi`` (and optionally ``alpha``, ``beta``, ``gamma``) compound-scales the named model
  before the other overrides apply. Unknown keys are an error naming the closest valid ones.
  """
  if name.endswith('.json') and name not in _REGISTRY:
    base, file_overrides = read_model_file(name)
    config = get_model_config(base, **{**file_overrides, **overrides})
    return dataclasses.replace(config, name=os.path.basename(name)[:-len('.json')])
  if name not in _REGISTRY:
    raise ValueError(f'unknown model {name!r}{_closest(name, _REGISTRY)} '
                     f'(list_models() has all {len(_REGISTRY)}; a model file ends in .json)')
  config = _REGISTRY[name]
  scaling = {k: overrides.pop(k) for k in ('phi', 'alpha', 'beta', 'gamma') if k in overrides}
  if scaling:
    if 'phi' not in scaling:
      raise ValueError('alpha/beta/gamma given without phi')
    config = compound_scale(config, **scaling)
  fields = {f.name for f in dataclasses.fields(ModelConfig)} - {'name', 'family'}
  for key in overrides:
    if key in RENAMED_FIELDS:
      raise ValueError(f'model override {key!r} is now {RENAMED_FIELDS[key]!r}')
    if key not in fields:
      raise ValueError(f'unknown model override {key!r}{_closest(key, fields | {"phi"})}')
  # JSON (model.json, run records) reads tuples back as lists
  overrides = {k: _tuples(v) for k, v in overrides.items()}
  config = dataclasses.replace(config, **overrides)
  _validate(config)
  return config


def _tuples(value):
  """Lists (nested too) as tuples: a config stays hashable."""
  return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def write_model_file(path: str, base: str, overrides: dict[str, Any], source: str = '') -> str:
  """A model file: a registered ``base`` model and the ``overrides`` that make another network
  of it (a search's result). ``get_model_config(path)`` — and so ``--config.model=path`` —
  builds it like a registered name."""
  get_model_config(base, **overrides)  # a file that cannot build is never written
  record = {'base': base, 'overrides': overrides, 'source': source}
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, path)
  return path


def read_model_file(path: str) -> tuple[str, dict[str, Any]]:
  """``(base, overrides)`` of a model file (:func:`write_model_file`)."""
  try:
    with open(path) as f:
      record = json.load(f)
  except FileNotFoundError:
    raise ValueError(f'model file {path!r} does not exist') from None
  except (OSError, json.JSONDecodeError) as error:
    raise ValueError(f'model file {path!r} cannot be read: {error}') from None
  if not isinstance(record, dict) or not isinstance(record.get('base'), str) or not isinstance(
      record.get('overrides', {}), dict):
    raise ValueError(f'model file {path!r}: expected {{"base": <registered model>, '
                     f'"overrides": {{...}}}}, got {str(record)[:200]}')
  return record['base'], dict(record.get('overrides', {}))


def _validate(config: ModelConfig) -> None:
  if config.padding not in PADDINGS:
    raise ValueError(f'padding {config.padding!r}: expected one of {PADDINGS}')
  if config.activation not in ACTIVATIONS:
    raise ValueError(f'activation {config.activation!r}: expected one of {sorted(ACTIVATIONS)}')
  if config.depthwise_impl not in DEPTHWISE_IMPLS:
    raise ValueError(f'depthwise_impl {config.depthwise_impl!r}: expected one of {DEPTHWISE_IMPLS}')
  if config.conv_impl not in CONV_IMPLS:
    raise ValueError(f'conv_impl {config.conv_impl!r}: expected one of {CONV_IMPLS}')
  if config.crop_mode not in ('center', 'squash'):
    raise ValueError(f"crop_mode {config.crop_mode!r}: expected 'center' or 'squash'")
  if config.width_mult <= 0 or config.depth_mult <= 0:
    raise ValueError('width_mult and depth_mult must be positive')
  if not 0 <= config.drop_path_rate < 1 or not 0 <= config.dropout_rate < 1:
    raise ValueError('drop_path_rate and dropout_rate must be in [0, 1)')
  get_dtype(config.dtype)
  get_dtype(config.param_dtype)


def build_model(config: ModelConfig) -> nn.Module:
  """The Flax module for a (possibly overridden) config, built by its family."""
  return get_family(config.family).build(config)


def feature_info(config: ModelConfig) -> tuple[Any, ...]:
  """The feature levels of ``config``'s network (one per reduction 2, 4, 8, 16, 32; each
  with ``module``, ``num_chs``, ``reduction``), the ones ``out_indices`` index."""
  hook = get_family(config.family).feature_info
  if hook is None:
    raise ValueError(f'{config.name}: the {config.family} family defines no feature levels')
  return hook(config)


def create_model(name: str, num_classes: int = 1000, features_only: bool = False,
                 out_indices=None, pretrained: bool | str = False, **overrides) -> nn.Module:
  """A registered model as a Flax linen module; see :class:`ModelConfig` for overrides.

  ``features_only``: a backbone returning the feature maps of ``out_indices`` (default: every
  level, reductions 2 to 32) instead of logits, with the levels in ``model.feature_info``
  (timm's convention). The module only: released weights come with
  ``effnet_jax.create_model(name, pretrained=True)``."""
  if pretrained:
    raise ValueError('effnet_jax.models.create_model builds the module only; for released '
                     f'weights use effnet_jax.create_model({name!r}, pretrained=...)')
  if out_indices is not None and not features_only:
    raise ValueError('out_indices selects feature levels: give features_only=True too')
  config = get_model_config(name, num_classes=num_classes, **overrides)
  if features_only:
    config = dataclasses.replace(config, out_indices=backbone_levels(config, out_indices))
  return build_model(config)


def backbone_levels(config: ModelConfig, out_indices=None) -> tuple[int, ...]:
  """The feature levels of a ``features_only`` model: ``out_indices``, by default every level."""
  return tuple(range(len(feature_info(config))) if out_indices is None else out_indices)
