"""Pretrained directories: written atomically, checked against model.json when loaded."""
import json
import os

import jax
import numpy as np
import pytest

from effnet_jax.checkpoints import CheckpointMismatch
from effnet_jax.pretrained import load_pretrained, save_pretrained


def leaves(variables):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(variables)]


def test_an_interrupted_save_leaves_the_previous_directory_as_it_was(tiny_pretrained, monkeypatch,
                                                                     tmp_path):
  path = tiny_pretrained(10)
  _, old = load_pretrained(path)
  meta = json.load(open(os.path.join(path, 'model.json')))
  new = jax.tree_util.tree_map(lambda x: np.asarray(x) + 1, old)

  def full_disk(*args, **kwargs):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(json, 'dump', full_disk)  # while model.json is written
  with pytest.raises(OSError, match='No space left'):
    save_pretrained(path, meta['model'], new, meta['overrides'], class_names=None)
  monkeypatch.undo()
  _, kept = load_pretrained(path)
  for a, b in zip(leaves(kept), leaves(old), strict=True):
    np.testing.assert_array_equal(a, b)
  assert sorted(os.listdir(tmp_path)) == ['weights']  # no temporary directory left behind
  save_pretrained(path, meta['model'], new, meta['overrides'])  # a replacement that completes
  _, replaced = load_pretrained(path)
  for a, b in zip(leaves(replaced), leaves(new), strict=True):
    np.testing.assert_array_equal(a, b)
  assert sorted(os.listdir(tmp_path)) == ['weights']


def test_a_directory_that_is_not_ours_is_never_replaced(tiny_pretrained, tmp_path):
  _, variables = load_pretrained(tiny_pretrained(10))
  meta = json.load(open(tmp_path / 'weights' / 'model.json'))
  other = tmp_path / 'photos'
  other.mkdir()
  (other / 'cat.jpg').write_bytes(b'...')
  with pytest.raises(FileExistsError, match='not a pretrained directory'):
    save_pretrained(str(other), meta['model'], variables, meta['overrides'])
  assert os.listdir(other) == ['cat.jpg']


def test_model_json_that_does_not_match_the_variables_is_named(tiny_pretrained, tmp_path):
  """model.json edited by hand (or copied beside other weights): the mismatch is named, not a
  Flax shape error."""
  path = tiny_pretrained(10)
  meta_path = os.path.join(path, 'model.json')
  meta = json.load(open(meta_path))
  meta['overrides']['num_classes'] = 12
  json.dump(meta, open(meta_path, 'w'))
  with pytest.raises(CheckpointMismatch, match=r'variables/ of the efficientnet_b0 that '
                                               r'model.json describes does not match the model'
                                               r'(.|\n)*shape differs(.|\n)*params/classifier/'
                                               r'bias: checkpoint \(10,\) vs model \(12,\)'):
    load_pretrained(path)
