"""The official training recipes as config builders, and the small CPU recipe.

The recipes, their sources and where they differ from the papers: docs/reference.md, 'Official
training recipes'.

One config file per model family runs these: ``configs/efficientnet.py``,
``configs/efficientnetv2.py``, ``configs/rexnet.py`` and, for the networks the papers compare
with, ``configs/resnet.py``, ``configs/mobilenetv2.py`` and ``configs/swin.py`` take the config
argument ``variant=...`` (a row of the family's table below: ``EFFICIENTNET_VARIANTS``, ...) and
``data=imagenet`` (default; TFDS ``imagenet2012`` with a manual download directory) or
``data=embedded`` (the same recipe, shortened and shrunk to run on the embedded Fashion-MNIST on
a CPU), e.g. ``--config configs/efficientnet.py:variant=b0,data=embedded``.
:func:`model_recipe` is a model's recipe by its registered name.

The embedded data set and its CPU settings (:func:`embedded_data`) and the default job's small
recipe (:func:`small_cpu`) are defined here once for configs/default.py, the ablation rows
(``effnet_jax.analysis.trainer.small_train_config``) and ``data=embedded``
(:func:`embedded_variant`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import ml_collections

from effnet_jax.config import (ConfigArgumentError, base_config, check_arg_keys,
                               parse_config_arg)

DATA_CHOICES = ('imagenet', 'embedded')
CURRICULUM_CHOICES = ('code', 'paper')  # progressive-learning values: released code or paper
PROGRESSIVE_CHOICES = ('true', 'false')

# ImageNet-1k through TFDS: the train split (1,281,167 images) and the 50,000 validation images.
IMAGENET = dict(source='tfds', name='imagenet2012', train_split='train',
                eval_split='validation')
# The embedded data set: the real Fashion-MNIST (Debian's dataset-fashion-mnist), cached.
EMBEDDED = dict(source='embedded', name='fashion_mnist', train_split='train', eval_split='test',
                cache=True)


def embedded_data(c: ml_collections.ConfigDict, image_size: int) -> ml_collections.ConfigDict:
  """The embedded data set (Fashion-MNIST) and the CPU settings every run on it shares: train and
  eval at ``image_size`` px, the whole image evaluated, the unrolled depthwise convolution, BN
  momentum 0.9, float32, BN statistics over all devices."""
  c.data.update(EMBEDDED)
  c.input.update(image_size=image_size, eval_image_size=image_size,
                 crop_fraction=1.0)  # evaluate the whole image
  c.model_overrides.depthwise_impl = 'auto'  # unrolled depthwise conv on CPU: much faster steps
  # Running BN statistics must follow weights that move fast in a short run (with the official
  # 0.99 they lag so far behind that eval-mode accuracy collapses; measured: docs/training.md).
  c.model_overrides.bn_momentum = 0.9
  c.bn_group_size = 0
  c.dtype = 'float32'
  return c


def small_cpu(model: str = 'efficientnet_b0', image_size: int = 40, batch_size: int = 128,
              base_learning_rate: float = 0.008, warmup_epochs: float = 0.5,
              ema_decay: float = 0.999) -> ml_collections.ConfigDict:
  """The embedded default job's recipe (configs/default.py, whose values are the defaults):
  ``model`` on the embedded data at ``image_size`` px, AdamW (weight decay 0.01, decoupled, not
  on biases and BN) with cosine decay to 0 after ``warmup_epochs``, flips only, no dropout or
  stochastic depth (a run this short underfits: train accuracy stays below test accuracy), EMA
  ``ema_decay`` (0: none). The run length and bookkeeping are the caller's."""
  c = embedded_data(base_config(), image_size)
  c.model = model
  c.model_overrides.update(dropout_rate=0.0, drop_path_rate=0.0)
  c.input.train_crop = 'none'
  c.augment.update(flip=True, augment='none', label_smoothing=0.0)
  c.batch_size = batch_size
  c.optimizer.update(name='adamw', base_learning_rate=base_learning_rate, weight_decay=0.01,
                     weight_decay_mode='decoupled', weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='cosine', warmup_epochs=warmup_epochs, min_learning_rate=0.0)
  c.ema_decay = ema_decay
  return c


def embedded_variant(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a recipe to the embedded data set on a CPU: the same optimizer, schedule shape
  and regularisation, 32 px, a small batch, a few epochs (:func:`embedded_data`)."""
  embedded_data(c, 32)
  c.input.train_crop = 'pad_crop'
  c.augment.augment = 'none'
  c.batch_size = 128
  c.num_epochs = 5.0
  c.schedule.warmup_epochs = 0.5
  if c.schedule.name == 'exponential':
    c.schedule.decay_epochs = 0.25  # the same number of decay steps per run as 350 / 2.4 ≈ 146
  if c.ema_decay:
    c.ema_decay = 0.999  # ~1,000-step horizon for a ~2,300-step run
  c.log_every_steps = 50
  if c.curriculum.num_stages > 1:
    # the same stages from 16 px up to 32 px (code: 20, 24, 28, 32); paper sizes scaled alike
    c.curriculum.min_image_size = 16
    c.curriculum.max_image_size = None
  return c


def _on_data(c: ml_collections.ConfigDict, data: str) -> ml_collections.ConfigDict:
  if data not in DATA_CHOICES:
    raise ConfigArgumentError(f'config argument data={data!r}; valid values: {DATA_CHOICES}')
  if data == 'imagenet':
    c.data.update(IMAGENET)
    return c
  return embedded_variant(c)


def efficientnet_v1(model: str, data: str = 'imagenet') -> ml_collections.ConfigDict:
  """tensorflow/tpu EfficientNet recipe: TF RMSProp, 0.016 per 256 images at batch 2048,
  5 warm-up epochs, 0.97 every 2.4 epochs, 350 epochs, coupled weight decay 1e-5 on all but
  BN, label smoothing 0.1, EMA 0.9999, AutoAugment (the published accuracies), bf16."""
  c = base_config()
  c.model = model
  c.batch_size = 2048
  c.num_epochs = 350.0
  c.optimizer.update(name='rmsprop_tf', base_learning_rate=0.016, weight_decay=1e-5,
                     weight_decay_mode='coupled', weight_decay_exclude='bn')
  c.schedule.update(name='exponential', warmup_epochs=5.0, decay_epochs=2.4, decay_rate=0.97)
  c.input.update(train_crop='inception', area_range=(0.08, 1.0), min_object_covered=0.1)
  c.augment.update(augment='autoaugment', label_smoothing=0.1)
  c.ema_decay = 0.9999
  c.eval_every_epochs = 5.0
  return _on_data(c, data)


def efficientnetv2(model: str, randaug_magnitude: float | None, mix_alpha: float,
                   data: str = 'imagenet', progressive: bool = True, curriculum: str = 'code',
                   paper: dict | None = None) -> ml_collections.ConfigDict:
  """google/automl EfficientNetV2 recipe: TF RMSProp 0.016 per 256 at batch 4096, 5 warm-up
  epochs, 0.97 every 2.4 epochs, 350 epochs, weight decay 1e-5 excluding biases and BN, label
  smoothing 0.1, EMA 0.9999, BN momentum 0.9. S/M/L/XL: RandAugment N=2, Mixup=CutMix, crop
  area 0.05-1; B0-B3 (``randaug_magnitude=None``): AutoAugment and the V1 crop.

  ``progressive``: the released code's 4-stage progressive learning (image size from ibase 128
  to the train size, RandAugment magnitude 5 -> max, Mixup/CutMix 0 -> max, dropout constant);
  ``curriculum='paper'`` applies ``paper`` (the paper's Table 6 values) instead.
  ``progressive=False``: the fixed-size ablation twin at the final stage's values."""
  c = base_config()
  c.model = model
  c.batch_size = 4096
  c.num_epochs = 350.0
  c.optimizer.update(name='rmsprop_tf', base_learning_rate=0.016, weight_decay=1e-5,
                     weight_decay_mode='coupled', weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='exponential', warmup_epochs=5.0, decay_epochs=2.4, decay_rate=0.97)
  if randaug_magnitude is None:
    c.input.update(train_crop='inception', area_range=(0.08, 1.0), min_object_covered=0.1)
    c.augment.update(augment='autoaugment')
  else:
    c.input.update(train_crop='inception', area_range=(0.05, 1.0), min_object_covered=0.0)
    c.augment.update(augment='randaugment', randaug_num_layers=2,
                     randaug_magnitude=randaug_magnitude)
  c.augment.update(mixup_alpha=mix_alpha, cutmix_alpha=mix_alpha, label_smoothing=0.1)
  c.ema_decay = 0.9999
  c.eval_every_epochs = 5.0
  if progressive:
    c.curriculum.update(num_stages=4, schedule='code', min_image_size=128,
                        randaug_magnitude_min=5.0, mixup_alpha_min=0.0)
    if curriculum == 'paper':
      c.curriculum.update(dict(schedule='paper') | (paper or {}))
    elif curriculum != 'code':
      raise ConfigArgumentError(f'config argument curriculum={curriculum!r}; valid values: '
                                f'{CURRICULUM_CHOICES}')
  elif curriculum != 'code':
    raise ConfigArgumentError('config argument curriculum: the values of progressive learning, '
                              'not taken with progressive=false')
  return _on_data(c, data)


def rexnet(model: str, data: str = 'imagenet') -> ml_collections.ConfigDict:
  """clovaai/rexnet recipe (timm train.py): SGD Nesterov 0.9, lr 0.5 at batch 512 (0.25 per
  256), 5 warm-up epochs then cosine, 400 epochs, weight decay 1e-5 excluding biases and BN,
  label smoothing 0.1, RandAugment magnitude 9, head dropout 0.2, per-GPU BN, no EMA."""
  c = base_config()
  c.model = model
  c.batch_size = 512
  c.num_epochs = 400.0
  c.optimizer.update(name='sgd', base_learning_rate=0.25, momentum=0.9, nesterov=True,
                     weight_decay=1e-5, weight_decay_mode='coupled',
                     weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='cosine', warmup_epochs=5.0, min_learning_rate=1e-5)
  c.input.update(train_crop='inception', area_range=(0.08, 1.0), min_object_covered=0.0)
  c.augment.update(augment='randaugment', randaug_num_layers=2, randaug_magnitude=9.0,
                   label_smoothing=0.1)
  c.ema_decay = 0.0
  c.bn_group_size = 1
  c.dtype = 'bfloat16'
  c.eval_every_epochs = 5.0
  return _on_data(c, data)


def _pytorch_style(c: ml_collections.ConfigDict, data: str, progressive: bool
                   ) -> ml_collections.ConfigDict:
  """What the ResNet and MobileNetV2 recipes share: BN statistics per device, bf16, evaluation
  every 5 epochs, and with ``progressive`` the EfficientNetV2 code's 4-stage curriculum from
  128 px (image size only: neither recipe has RandAugment or Mixup to ramp)."""
  c.bn_group_size = 1
  c.dtype = 'bfloat16'
  c.eval_every_epochs = 5.0
  if progressive:
    c.curriculum.update(num_stages=4, schedule='code', min_image_size=128)
  return _on_data(c, data)


def resnet(model: str, data: str = 'imagenet', progressive: bool = False
           ) -> ml_collections.ConfigDict:
  """The ResNet-50 recipe of "Bag of Tricks" (He et al. 2019), cosine decay and label smoothing
  without distillation or mixup: SGD with Nesterov momentum 0.9, 0.1 per 256 images at batch
  1024, 5 linear warm-up epochs, cosine to 0, 120 epochs, weight decay 1e-4 (coupled, not on
  biases and BN), label smoothing 0.1, Inception crop, per-device BN, no EMA, bf16.

  ``progressive``: the EfficientNetV2 code's 4-stage curriculum (image size from 128 px up to the
  train size; the EfficientNetV2 paper applies progressive learning to ResNets too)."""
  c = base_config()
  c.model = model
  c.batch_size = 1024
  c.num_epochs = 120.0
  c.optimizer.update(name='sgd', base_learning_rate=0.1, momentum=0.9, nesterov=True,
                     weight_decay=1e-4, weight_decay_mode='coupled',
                     weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='cosine', warmup_epochs=5.0, min_learning_rate=0.0)
  c.input.update(train_crop='inception', area_range=(0.08, 1.0), min_object_covered=0.0)
  c.augment.update(augment='none', label_smoothing=0.1)
  c.ema_decay = 0.0
  return _pytorch_style(c, data, progressive)


def mobilenetv2(model: str, data: str = 'imagenet', progressive: bool = False
                ) -> ml_collections.ConfigDict:
  """The MobileNetV2 release recipe (tensorflow/models slim README flags; the paper's section 6.1
  agrees): TF RMSProp (decay 0.9, momentum 0.9, epsilon 1.0), 0.045 per 96 images on each of 8
  GPUs (batch 768, 0.12 per 256), no warm-up, x 0.98 every 2.5 epochs, ~420 epochs (700k steps),
  weight decay 4e-5 (coupled, not on BN), label smoothing 0.1, EMA 0.9999, Inception crop
  (area 0.05-1), dropout 0.2, BN decay 0.997, per-device BN, bf16.

  ``progressive``: the EfficientNetV2 code's 4-stage curriculum (as :func:`resnet`)."""
  c = base_config()
  c.model = model
  c.model_overrides.bn_momentum = 0.997
  c.batch_size = 768
  c.num_epochs = 420.0
  # slim averages the 8 clones' gradients and multiplies 0.045 by the clone count: 0.36 at 768
  c.optimizer.update(name='rmsprop_tf', base_learning_rate=0.12, momentum=0.9, rms_decay=0.9,
                     eps=1.0, weight_decay=4e-5, weight_decay_mode='coupled',
                     weight_decay_exclude='bn_and_bias')
  c.schedule.update(name='exponential', warmup_epochs=0.0, decay_epochs=2.5, decay_rate=0.98)
  c.input.update(train_crop='inception', area_range=(0.05, 1.0), min_object_covered=0.1)
  c.augment.update(augment='none', label_smoothing=0.1)
  c.ema_decay = 0.9999
  return _pytorch_style(c, data, progressive)


def swin(model: str, drop_path_rate: float, data: str = 'imagenet') -> ml_collections.ConfigDict:
  """The Swin Transformer ImageNet-1k recipe (microsoft/Swin-Transformer ``config.py`` and the
  paper's appendix A2.1): AdamW (0.9, 0.999, eps 1e-8), 5e-4 per 512 images at batch 1024,
  20 linear warm-up epochs from 1e-6, cosine to 1e-5, 300 epochs, weight decay 0.05 (decoupled,
  not on norms, biases and the relative position bias tables), gradient norm clipped at 5,
  RandAugment (2 ops, magnitude 9), Mixup 0.8 and CutMix 1.0, label smoothing 0.1, stochastic
  depth ``drop_path_rate`` (T 0.2, S 0.3, B 0.5), no EMA, eval crop 0.875, bf16."""
  c = base_config()
  c.model = model
  c.model_overrides.update(drop_path_rate=drop_path_rate, dropout_rate=0.0)
  c.batch_size = 1024
  c.num_epochs = 300.0
  c.optimizer.update(name='adamw', base_learning_rate=5e-4, lr_batch_base=512, b1=0.9,
                     b2=0.999, eps=1e-8, weight_decay=0.05, weight_decay_mode='decoupled',
                     weight_decay_exclude='norm_bias_and_tables', grad_clip_norm=5.0)
  c.schedule.update(name='cosine', warmup_epochs=20.0, warmup_init=1e-6, min_learning_rate=1e-5)
  c.input.update(train_crop='inception', area_range=(0.08, 1.0), min_object_covered=0.0,
                 crop_fraction=0.875)
  c.augment.update(augment='randaugment', randaug_num_layers=2, randaug_magnitude=9.0,
                   mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
  c.ema_decay = 0.0
  c.dtype = 'bfloat16'
  c.eval_every_epochs = 5.0
  if data == 'embedded':  # 32 px: token grids 8, 4, 2, 1 need a window dividing 8
    c.model_overrides.window_size = 4
  return _on_data(c, data)


# ---- the model families: one config file each, a variant per row ----

# EfficientNet-B0 ... B7: one recipe, the model alone differs.
EFFICIENTNET_VARIANTS = tuple(f'b{i}' for i in range(8))

# EfficientNetV2: RandAugment magnitude (None: AutoAugment and the V1 crop), Mixup = CutMix alpha
# (the released code's final-stage values) and the paper's Table 6 values (curriculum=paper).
_V2_PAPER_LARGE = dict(max_image_size=380, randaug_magnitude_max=25.0, mixup_alpha_max=0.4,
                       cutmix_alpha_max=0.0, dropout_min=0.1, dropout_max=0.5)
EFFICIENTNETV2_VARIANTS = {
    's': dict(randaug_magnitude=10.0, mix_alpha=0.0,
              paper=dict(randaug_magnitude_max=15.0, dropout_min=0.1, dropout_max=0.3)),
    'm': dict(randaug_magnitude=15.0, mix_alpha=0.2,
              paper=dict(max_image_size=380, randaug_magnitude_max=20.0, mixup_alpha_max=0.2,
                         cutmix_alpha_max=0.0, dropout_min=0.1, dropout_max=0.4)),
    'l': dict(randaug_magnitude=20.0, mix_alpha=0.5, paper=_V2_PAPER_LARGE),
    'xl': dict(randaug_magnitude=20.0, mix_alpha=0.5, paper=_V2_PAPER_LARGE),
    **{f'b{i}': dict(randaug_magnitude=None, mix_alpha=0.0, paper=None) for i in range(4)},
}

# ReXNet width multipliers x100.
REXNET_VARIANTS = ('100', '130', '150', '200', '300')

# ResNet: the recipe's paper reports ResNet-50 and ResNet-50-D (other depths: --config.model).
RESNET_VARIANTS = {'50': 'resnet50', '50d': 'resnet50d'}
# MobileNetV2 width multipliers x100 of the release table.
MOBILENETV2_VARIANTS = ('050', '075', '100', '140')
# Swin Transformer: the registered model and its stochastic-depth rate (official configs).
SWIN_VARIANTS = {'tiny': ('swin_tiny_patch4_window7_224', 0.2),
                 'small': ('swin_small_patch4_window7_224', 0.3),
                 'base': ('swin_base_patch4_window7_224', 0.5)}


def _variant_args(arg: str | None, variants, **options: tuple[str, ...]) -> dict[str, str]:
  """The config argument of a family config: ``variant`` (required), ``data`` and ``options``."""
  variants = tuple(variants)
  args = parse_config_arg(arg)
  check_arg_keys(args, dict(variant=variants, data=DATA_CHOICES, **options))
  if 'variant' not in args:
    raise ConfigArgumentError(f'config argument variant is required; valid values: {variants}')
  return args


def efficientnet_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/efficientnet.py: ``variant=b0`` ... ``b7`` [``,data=embedded``]."""
  args = _variant_args(arg, EFFICIENTNET_VARIANTS)
  return efficientnet_v1(f'efficientnet_{args["variant"]}', args.get('data', 'imagenet'))


def efficientnetv2_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/efficientnetv2.py: ``variant=s|m|l|xl|b0|b1|b2|b3`` [``,progressive=false`` (the
  fixed-size ablation twin) | ``,curriculum=paper``] [``,data=embedded``]."""
  args = _variant_args(arg, EFFICIENTNETV2_VARIANTS, progressive=PROGRESSIVE_CHOICES,
                       curriculum=CURRICULUM_CHOICES)
  variant = args['variant']
  if args.get('progressive') == 'false' and 'curriculum' in args:
    raise ConfigArgumentError('config argument curriculum: the values of progressive learning, '
                              'not taken with progressive=false')
  return efficientnetv2(f'efficientnetv2_{variant}', **EFFICIENTNETV2_VARIANTS[variant],
                        data=args.get('data', 'imagenet'),
                        progressive=args.get('progressive', 'true') == 'true',
                        curriculum=args.get('curriculum', 'code'))


def rexnet_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/rexnet.py: ``variant=100|130|150|200|300`` [``,data=embedded``]."""
  args = _variant_args(arg, REXNET_VARIANTS)
  return rexnet(f'rexnet_{args["variant"]}', args.get('data', 'imagenet'))


def resnet_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/resnet.py: ``variant=50|50d`` [``,progressive=true``] [``,data=embedded``]."""
  args = _variant_args(arg, RESNET_VARIANTS, progressive=PROGRESSIVE_CHOICES)
  return resnet(RESNET_VARIANTS[args['variant']], args.get('data', 'imagenet'),
                progressive=args.get('progressive') == 'true')


def mobilenetv2_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/mobilenetv2.py: ``variant=050|075|100|140`` [``,progressive=true``]
  [``,data=embedded``]."""
  args = _variant_args(arg, MOBILENETV2_VARIANTS, progressive=PROGRESSIVE_CHOICES)
  return mobilenetv2(f'mobilenetv2_{args["variant"]}', args.get('data', 'imagenet'),
                     progressive=args.get('progressive') == 'true')


def swin_config(arg: str | None) -> ml_collections.ConfigDict:
  """configs/swin.py: ``variant=tiny|small|base`` [``,data=embedded``]."""
  args = _variant_args(arg, SWIN_VARIANTS)
  model, drop_path_rate = SWIN_VARIANTS[args['variant']]
  return swin(model, drop_path_rate, args.get('data', 'imagenet'))


@dataclasses.dataclass(frozen=True)
class FamilyConfig:
  """A family config file (``configs/<name>.py``): its config function and its variants, each
  the registered model it trains."""
  config: Callable[[str | None], ml_collections.ConfigDict]
  models: Mapping[str, str]  # variant -> registered model name

  @property
  def variants(self) -> tuple[str, ...]:
    return tuple(self.models)


def _prefixed(prefix: str, variants) -> dict[str, str]:
  return {v: f'{prefix}_{v}' for v in variants}


# the config file's name -> its config and variants
FAMILIES: dict[str, FamilyConfig] = {
    'efficientnet': FamilyConfig(efficientnet_config,
                                 _prefixed('efficientnet', EFFICIENTNET_VARIANTS)),
    'efficientnetv2': FamilyConfig(efficientnetv2_config,
                                   _prefixed('efficientnetv2', EFFICIENTNETV2_VARIANTS)),
    'rexnet': FamilyConfig(rexnet_config, _prefixed('rexnet', REXNET_VARIANTS)),
    'resnet': FamilyConfig(resnet_config, RESNET_VARIANTS),
    'mobilenetv2': FamilyConfig(mobilenetv2_config,
                                _prefixed('mobilenetv2', MOBILENETV2_VARIANTS)),
    'swin': FamilyConfig(swin_config, {v: m for v, (m, _) in SWIN_VARIANTS.items()}),
}


def family_of(model: str) -> tuple[str, str] | None:
  """``'efficientnetv2_s'`` -> ``('efficientnetv2', 's')``: the family config and variant that
  hold the model's official recipe; None for a model without one (e.g. EfficientNet-Lite)."""
  for family, entry in FAMILIES.items():
    for variant, name in entry.models.items():
      if name == model:
        return family, variant
  return None


def model_recipe(model: str, arg: str | None = None) -> ml_collections.ConfigDict | None:
  """The official recipe of a registered model (``configs/<family>.py:variant=<v>``, with
  ``arg`` added, e.g. ``'data=embedded'``), or None where there is none."""
  found = family_of(model)
  if found is None:
    return None
  family, variant = found
  return FAMILIES[family].config(','.join([f'variant={variant}'] + ([arg] if arg else [])))


def small_progressive() -> ml_collections.ConfigDict:
  """The small CPU progressive-learning recipe: the EfficientNetV2 recipe on the embedded data
  set with EfficientNetV2-B0 at phi=-8 in three stages of 16, 24 and 32 px, AdamW with cosine
  decay, one epoch (configs/curriculum_smoke.py and the progressive-learning ablation)."""
  c = efficientnetv2('efficientnetv2_b0', randaug_magnitude=10.0, mix_alpha=0.2, data='embedded')
  c.model_overrides.phi = -8.0
  c.curriculum.update(num_stages=3, image_sizes=(16, 24, 32))
  c.optimizer.update(name='adamw', base_learning_rate=0.004, weight_decay=0.05,
                     weight_decay_mode='decoupled')
  c.schedule.update(name='cosine', warmup_epochs=0.1)
  c.num_epochs = 1.0
  return c
