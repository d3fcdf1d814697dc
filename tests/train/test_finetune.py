"""Fine-tuning (config.init_from): weights carried over, classifier re-initialised, checks."""
import json
import os

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from effnet_jax.models import get_model_config
from effnet_jax.pretrained import load_pretrained
from effnet_jax.train import finetune, loop
from test_loop import TWO_STAGES, saved_state, tiny_config

CLASSES = ('ant', 'bee', 'cat')


def image_folder(root, per_class, seed):
  """Tiny RGB PNGs, one sub-folder per class, each class of its own colour plus noise."""
  rng = np.random.default_rng(seed)
  for label, name in enumerate(CLASSES):
    os.makedirs(root / name)
    for i in range(per_class):
      image = np.clip(rng.normal(60 + 70 * label, 30, (20, 24, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(image).save(root / name / f'{i}.png')
  return str(root)


def flat(tree):
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_finetune_from_a_pretrained_directory(tmp_path, tiny_pretrained, monkeypatch, capsys):
  """A 10-class pretrained network fine-tuned on a 3-class folder through train_and_evaluate."""
  weights = tiny_pretrained(10, shape={'stages': TWO_STAGES, 'depthwise_impl': 'xla'})
  _, pretrained = load_pretrained(weights)
  starts = []
  original = loop.start_from

  def recording_start_from(state, *args, **kwargs):
    started = original(state, *args, **kwargs)
    starts.append(jax.device_get((state, started)))  # (the train step donates the state)
    return started
  monkeypatch.setattr(loop, 'start_from', recording_start_from)
  config = tiny_config(**{'data.source': 'folder',
                          'data.train_folder': image_folder(tmp_path / 'train', 6, 0),
                          'data.eval_folder': image_folder(tmp_path / 'eval', 2, 1),
                          'init_from': weights, 'num_train_steps': 3,
                          'optimizer.base_learning_rate': 0.05})
  workdir = str(tmp_path / 'run')
  results = loop.train_and_evaluate(config, workdir)

  (fresh, started), = starts
  head = ('params/classifier/bias', 'params/classifier/kernel')
  expected = flat({'params': pretrained['params'], 'batch_stats': pretrained['batch_stats']})
  for prefix, params, stats in (('', started.params, started.batch_stats),
                                ('ema ', started.ema_params, started.ema_batch_stats)):
    start = flat({'params': params, 'batch_stats': stats})
    assert set(start) == set(expected)
    for name in set(expected) - set(head):
      np.testing.assert_array_equal(start[name], expected[name], err_msg=prefix + name)
    for name in head:  # the fresh run's own initialisation, for 3 classes
      assert start[name].shape[-1] == 3 and expected[name].shape[-1] == 10
      np.testing.assert_array_equal(start[name], flat({'params': fresh.params})[name])
  assert 're-initialised for 3 classes: params/classifier/bias, params/classifier/kernel' in (
      capsys.readouterr().out)

  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['reinitialised'] for r in records if r.get('event') == 'init_from'] == [list(head)]
  losses = [r['train/loss'] for r in records if 'train/loss' in r]
  assert losses and all(np.isfinite(losses)) and np.isfinite(results['eval/loss'])
  final = flat({'params': saved_state(workdir, 3)['params']})
  assert not np.array_equal(final['params/stem/conv/kernel'],
                            expected['params/stem/conv/kernel'])  # it trained

  # the run's workdir is itself a weight directory: its class names and eval size
  from effnet_jax.predict import Predictor
  predictor = Predictor(workdir)
  assert predictor.labels == list(CLASSES) and predictor.prep.eval_image_size == 16
  result = next(predictor.predict_files([str(tmp_path / 'eval' / 'bee' / '0.png')], k=3))
  assert sorted(e['label'] for e in result['top3']) == sorted(CLASSES)


def test_merge_reinitialises_only_a_differently_shaped_head():
  pretrained = {'params': {'conv': {'kernel': np.ones((3, 3, 3, 8))},
                           'classifier': {'kernel': np.ones((8, 10)), 'bias': np.ones(10)}},
                'batch_stats': {'bn': {'mean': np.ones(8)}}}
  fresh = jax.tree_util.tree_map(lambda x: np.zeros_like(x, np.float32), pretrained)
  merged, reinitialised = finetune.merge_variables(pretrained, fresh, 'weights')
  assert reinitialised == [] and merged['params']['classifier']['bias'][0] == 1
  fresh['params']['classifier'] = {'kernel': np.zeros((8, 3), np.float32),
                                   'bias': np.zeros(3, np.float32)}
  merged, reinitialised = finetune.merge_variables(pretrained, fresh, 'weights')
  assert reinitialised == ['params/classifier/bias', 'params/classifier/kernel']
  chex.assert_shape(merged['params']['classifier']['kernel'], (8, 3))
  chex.assert_type(merged['params']['conv']['kernel'], np.float32)  # fresh's dtype
  fresh['params']['conv']['kernel'] = np.zeros((3, 3, 3, 16))
  fresh['batch_stats']['bn2'] = {'mean': np.zeros(8)}
  with pytest.raises(ValueError, match=r'weights does not match(.|\n)*missing from the '
                                       r'checkpoint \(1\): batch_stats/bn2/mean(.|\n)*shape '
                                       r'differs \(1\): params/conv/kernel'):
    finetune.merge_variables(pretrained, fresh, 'weights')


def test_architecture_must_match(tiny_pretrained, tmp_path):
  weights = tiny_pretrained(10)
  tiny = dict(phi=-12.0, num_classes=3)
  run = get_model_config('efficientnet_b0', **tiny, drop_path_rate=0.0, dropout_rate=0.0,
                         bn_momentum=0.9, crop_fraction=1.0)  # regularisation, metadata: fine
  assert finetune.architecture(run) == finetune.architecture(
      get_model_config('efficientnet_b0', **tiny))
  for other, message in [(get_model_config('efficientnet_b0', **tiny, padding='symmetric'),
                          "padding 'same' \\(run: 'symmetric'\\)"),
                         (get_model_config('efficientnet_b4', **tiny), 'blocks'),
                         (get_model_config('rexnet_100', num_classes=3), 'family')]:
    with pytest.raises(ValueError, match=f'init_from {weights}: the weights are a '
                                         f'efficientnet_b0_phi-12 of another architecture'
                                         f'(.|\n)*{message}'):
      finetune.load_initial_variables(weights, other, {})
  with pytest.raises(ValueError, match='init_from: .* is not a pretrained directory'):
    finetune.load_initial_variables(str(tmp_path), run, {})
