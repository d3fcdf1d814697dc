"""GradCAM class-activation maps (Selvaraju et al.) of registered models on image files, as a PNG
grid: one row per model (a pretrained directory or training workdir), one column per image —
EfficientNet's comparison of where differently scaled models look (its Fig. 7).

The map is taken at a feature map of ``forward_features()`` — by default ``head``, the output of
the 1x1 head convolution (the last map, the paper's choice); ``stageK`` for models whose last map
is too small to show anything (1x1 below 33 px). Channel weights are the spatial means of the
gradient of the class logit with respect to the map, the map is ``relu(Σ_k weight_k · A_k)``
scaled to [0, 1] per image.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from effnet_jax.analysis import plots
from effnet_jax.analysis.table import as_tuple


def _module_path(layer: str) -> tuple[str, ...]:
  """The network's submodule whose output is ``forward_features()[layer]``."""
  if layer in ('stem', 'head'):
    return ('stem',) if layer == 'stem' else ('head_conv',)
  if layer.startswith('stage') and layer[5:].isdigit():
    return (f'stages_{int(layer[5:]) - 1}',)
  raise ValueError(f"unknown layer {layer!r}: expected 'stem', 'stage1' ... 'stageN' or 'head'")


def gradcam(model, variables, images: jax.Array, classes: jax.Array | None = None,
            layer: str = 'head'):
  """``(maps [N, h, w] in [0, 1] at the resolution of feature map ``layer``, classes [N],
  probabilities [N, K])``; ``classes`` None: each image's predicted class.

  The gradient with respect to the feature map is the gradient with respect to a zero offset
  added to the output of ``layer``'s module (any layer works, not only the last)."""
  import flax.linen as nn
  path = _module_path(layer)
  if path == ('head_conv',) and 'head_conv' not in variables['params']:
    # no head conv (ResNet): its 'head' map is the last stage's output
    path = (max((k for k in variables['params'] if k.startswith('stages_')),
                key=lambda k: int(k[7:])),)
  shapes = jax.eval_shape(lambda v, x: model.apply(v, x, method='forward_features'),
                          variables, images)
  if layer not in shapes:
    raise ValueError(f'unknown layer {layer!r}; the model has {sorted(shapes)}')

  def logits_of(offset):
    captured = []

    def add_offset(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.method_name == '__call__' and context.module.scope.path == path:
        out = out + offset.astype(out.dtype)
        captured.append(out.astype(jnp.float32))
      return out

    with nn.intercept_methods(add_offset):
      logits = model.apply(variables, images, train=False)
    return logits, captured[0]

  offset = jnp.zeros(shapes[layer].shape, jnp.float32)
  logits, backward, features = jax.vjp(logits_of, offset, has_aux=True)
  if classes is None:
    classes = jnp.argmax(logits, axis=-1)
  # eval mode: images do not interact, so one backward pass gives every image its own gradient
  (grads,) = backward(jax.nn.one_hot(classes, logits.shape[-1], dtype=logits.dtype))
  weights = jnp.mean(grads, axis=(1, 2))
  maps = jax.nn.relu(jnp.einsum('nhwc,nc->nhw', features, weights))
  peak = jnp.max(maps, axis=(1, 2), keepdims=True)
  maps = jnp.where(peak > 0, maps / jnp.where(peak > 0, peak, 1.0), 0.0)
  return maps, classes, jax.nn.softmax(logits)


def upsample(maps: jax.Array, height: int, width: int) -> jax.Array:
  """Maps ``[N, h, w]`` resized bilinearly to ``[N, height, width]``."""
  return jax.image.resize(maps, (maps.shape[0], height, width), 'bilinear')


def export_eval_images(data: ml_collections.ConfigDict, count: int, directory: str) -> list[str]:
  """The first ``count`` images of a data config's eval split as PNG files (named by index and
  label): given images for data sets without files, e.g. the embedded one."""
  import tensorflow as tf

  from effnet_jax.data import DataConfig
  from effnet_jax.data.sources import open_source
  from effnet_jax.data.shards import StreamedShard
  source = open_source(DataConfig(**data.to_dict()))
  shard = source.split('eval').shard(0, 1)
  count = min(count, shard.num_examples)
  examples = (shard.read().take(count) if isinstance(shard, StreamedShard) else
              (shard.fetch(tf.constant(i, tf.int64)) for i in range(count)))
  os.makedirs(directory, exist_ok=True)
  paths = []
  for index, example in enumerate(examples):
    image = example['image']
    if image.dtype == tf.string:
      image = tf.io.decode_image(image, channels=3, expand_animations=False)
    name = source.class_names[int(example['label'])].replace(' ', '_').replace('/', '-')
    path = os.path.join(directory, f'{index:03d}_{name}.png')
    tf.io.write_file(path, tf.io.encode_png(image))
    paths.append(path)
  return paths


def read_rgb(path: str) -> np.ndarray:
  from PIL import Image
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB'))


def maps_for(weights: str, paths: list[str], layer: str = 'head'
             ) -> tuple[list[dict], np.ndarray]:
  """One model's maps on ``paths`` at its own eval preprocessing: ``(rows, maps)``."""
  from effnet_jax.predict import class_labels, eval_preprocessing, load_image
  from effnet_jax.pretrained import load_pretrained_with_meta
  model, variables, meta, mcfg = load_pretrained_with_meta(weights)
  if not mcfg.num_classes:
    raise ValueError(f'{weights}: a feature extractor (num_classes=0) has no class to explain')
  labels = class_labels(mcfg.num_classes, meta.get('class_names'))
  prep = eval_preprocessing(mcfg)
  images = np.stack([load_image(p, prep) for p in paths])
  maps, classes, probabilities = jax.jit(lambda v, x: gradcam(model, v, x, layer=layer))(
      variables, images)
  rows = [{'weights': weights, 'image': p, 'eval_image_size': prep.eval_image_size,
           'map_size': maps.shape[1], 'class': int(c), 'label': labels[int(c)],
           'probability': float(probabilities[i, c])}
          for i, (p, c) in enumerate(zip(paths, np.asarray(classes)))]
  return rows, np.asarray(maps)


def run_gradcam(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  weights = as_tuple(config.weights, 'weights', str)
  if not weights:
    raise ValueError("gradcam: set --config.weights=\"('DIR', ...)\" (pretrained directories or "
                     'training workdirs)')
  absent = [w for w in weights if not os.path.isdir(w)]
  if absent:
    raise FileNotFoundError(
        f'gradcam: no such weights directory: {", ".join(absent)}. The small-scale default is '
        'the scaling experiment\'s models: run `python -m effnet_jax.tools.ablate --config '
        'configs/ablations/scaling.py --workdir workdirs/ablations/scaling` first (from the '
        'same directory), or set --config.weights="(\'DIR\', ...)"')
  paths = list(as_tuple(config.images, 'images', str)) or export_eval_images(
      config.data, config.num_images, os.path.join(workdir, 'images'))
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise FileNotFoundError(f'gradcam: no such image file: {", ".join(missing)}')
  rows, grid = [], []
  for w in weights:
    model_rows, maps = maps_for(w, paths, config.layer)
    rows += model_rows
    grid.append((model_rows, maps))
  plot_grid(grid, paths, os.path.join(workdir, f'{config.name}.png'), config.layer)
  return rows


def plot_grid(grid, paths: list[str], path: str, layer: str, size: int = 96) -> str:
  images = [read_rgb(p) for p in paths]
  fig, axes = plots.subplots(len(paths), len(grid), width=1.5, height=1.6)
  for r, (rows, maps) in enumerate(grid):
    resized = np.asarray(upsample(jnp.asarray(maps), size, size))
    for c, image in enumerate(images):
      ax = axes[r * len(paths) + c]
      shown = np.asarray(jax.image.resize(jnp.asarray(image, jnp.float32) / 255,
                                          (size, size, 3), 'bilinear')).clip(0, 1)
      ax.imshow(shown)
      ax.imshow(resized[c], cmap='jet', alpha=0.45, vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(f'{rows[c]["label"][:12]} {rows[c]["probability"]:.2f}', fontsize=6)
      if c == 0:
        ax.set_ylabel(os.path.basename(os.path.normpath(rows[0]['weights'])), fontsize=7)
  return plots.save(fig, path, f'GradCAM at {layer}')
