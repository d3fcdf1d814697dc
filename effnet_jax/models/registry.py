"""Model registry: names -> architecture + metadata, and the public construction API."""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import jax.numpy as jnp

from effnet_jax.models import arch as arch_lib
from effnet_jax.models.layers import ACTIVATIONS, DEPTHWISE_IMPLS, PADDINGS, LayerConfig
from effnet_jax.models.network import EfficientNet

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
  family: str  # efficientnet | efficientnet_lite | efficientnetv2 | rexnet
  # Architecture.
  # base block strings; ReXNet: generated from width/depth unless given (final widths, as
  # arch.linear_bottleneck_stages writes them)
  stages: tuple[tuple[str, ...], ...] = ()
  width_mult: float = 1.0
  depth_mult: float = 1.0
  stem_channels: int = 32
  head_channels: int = 1280
  fix_stem_head: bool = False  # Lite: stem and head widths not scaled
  fix_first_last_repeats: bool = False  # Lite: first/last stage repeats not scaled
  round_limit: float = 0.9  # V1 10 % rule; V2 0.0
  activation: str = 'silu'
  padding: str = 'same'
  bn_momentum: float = 0.99  # Flax/TF convention (running = m * running + (1 - m) * batch)
  bn_eps: float = 1e-3
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.2
  num_classes: int = 1000
  dtype: str = 'float32'  # compute dtype
  param_dtype: str = 'float32'
  bn_axis_name: str | tuple[str, ...] | None = None  # mesh axes of cross-device BN statistics
  depthwise_impl: str = 'xla'  # xla | unrolled | auto (see layers.LayerConfig)
  # Metadata: how the model is trained and evaluated.
  train_size: int = 224
  eval_size: int = 224
  crop_fraction: float = 0.875  # eval centre crop side / shorter image side
  crop_mode: str = 'center'  # center | squash (resize the whole image, no crop)
  interpolation: str = 'bicubic'
  mean: tuple[float, float, float] = IMAGENET_MEAN  # on [0, 1] images
  std: tuple[float, float, float] = IMAGENET_STD

  def resolved_stem_channels(self) -> int:
    if self.family == 'rexnet':
      stem = 32 / self.width_mult if self.width_mult < 1.0 else 32
      return int(round(stem * self.width_mult))
    if self.fix_stem_head:
      return self.stem_channels
    return arch_lib.round_filters(self.stem_channels, self.width_mult, round_limit=self.round_limit)

  def resolved_head_channels(self) -> int:
    if self.family == 'rexnet':
      return int(self.head_channels * self.width_mult)
    if self.fix_stem_head:
      return self.head_channels
    return arch_lib.round_filters(self.head_channels, self.width_mult, round_limit=self.round_limit)

  def block_strings(self) -> tuple[tuple[str, ...], ...]:
    if self.family == 'rexnet' and not self.stages:  # the linear schedule of width_mult
      return arch_lib.rexnet_stages(self.width_mult, self.depth_mult)
    return self.stages

  def resolved_arch(self) -> tuple[tuple[arch_lib.BlockSpec, ...], ...]:
    rexnet = self.family == 'rexnet'
    return arch_lib.decode_arch(
        self.block_strings(), self.resolved_stem_channels(),
        width_mult=1.0 if rexnet else self.width_mult,
        depth_mult=1.0 if rexnet else self.depth_mult,  # ReXNet strings are already scaled
        round_limit=self.round_limit, fix_first_last_repeats=self.fix_first_last_repeats,
        round_channels=not rexnet, drop_path_rate=self.drop_path_rate)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


_REGISTRY: dict[str, ModelConfig] = {}


def register(config: ModelConfig) -> ModelConfig:
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
  train_size = arch_lib.scaled_resolution(config.train_size, r)
  eval_size = arch_lib.scaled_resolution(config.eval_size, r)
  return dataclasses.replace(config, name=f'{config.name}_phi{phi:g}',
                             width_mult=config.width_mult * w, depth_mult=config.depth_mult * d,
                             train_size=train_size, eval_size=eval_size)


def get_model_config(name: str, **overrides) -> ModelConfig:
  """The registered config of ``name`` with ``overrides`` applied.

  ``phi`` (and optionally ``alpha``, ``beta``, ``gamma``) compound-scales the named model
  before the other overrides apply. Unknown keys are an error naming the closest valid ones.
  """
  if name not in _REGISTRY:
    raise ValueError(f'unknown model {name!r}{_closest(name, _REGISTRY)} '
                     f'(list_models() has all {len(_REGISTRY)})')
  config = _REGISTRY[name]
  scaling = {k: overrides.pop(k) for k in ('phi', 'alpha', 'beta', 'gamma') if k in overrides}
  if scaling:
    if 'phi' not in scaling:
      raise ValueError('alpha/beta/gamma given without phi')
    config = compound_scale(config, **scaling)
  fields = {f.name for f in dataclasses.fields(ModelConfig)} - {'name', 'family'}
  for key in overrides:
    if key not in fields:
      raise ValueError(f'unknown model override {key!r}{_closest(key, fields | {"phi"})}')
  config = dataclasses.replace(config, **overrides)
  _validate(config)
  return config


def _validate(config: ModelConfig) -> None:
  if config.padding not in PADDINGS:
    raise ValueError(f'padding {config.padding!r}: expected one of {PADDINGS}')
  if config.activation not in ACTIVATIONS:
    raise ValueError(f'activation {config.activation!r}: expected one of {sorted(ACTIVATIONS)}')
  if config.depthwise_impl not in DEPTHWISE_IMPLS:
    raise ValueError(f'depthwise_impl {config.depthwise_impl!r}: expected one of {DEPTHWISE_IMPLS}')
  if config.crop_mode not in ('center', 'squash'):
    raise ValueError(f"crop_mode {config.crop_mode!r}: expected 'center' or 'squash'")
  if config.width_mult <= 0 or config.depth_mult <= 0:
    raise ValueError('width_mult and depth_mult must be positive')
  if not 0 <= config.drop_path_rate < 1 or not 0 <= config.dropout_rate < 1:
    raise ValueError('drop_path_rate and dropout_rate must be in [0, 1)')
  get_dtype(config.dtype)
  get_dtype(config.param_dtype)


def build_model(config: ModelConfig) -> EfficientNet:
  """The Flax module for a (possibly overridden) config."""
  return EfficientNet(
      arch=config.resolved_arch(), stem_channels=config.resolved_stem_channels(),
      head_channels=config.resolved_head_channels(), num_classes=config.num_classes,
      activation=config.activation, dropout_rate=config.dropout_rate,
      layers=LayerConfig(
          padding=config.padding, bn_momentum=config.bn_momentum, bn_eps=config.bn_eps,
          bn_axis_name=config.bn_axis_name, depthwise_impl=config.depthwise_impl,
          dtype=get_dtype(config.dtype), param_dtype=get_dtype(config.param_dtype)))


def create_model(name: str, num_classes: int = 1000, **overrides) -> EfficientNet:
  """A registered model as a Flax linen module; see :class:`ModelConfig` for overrides."""
  return build_model(get_model_config(name, num_classes=num_classes, **overrides))
