"""augment_on_device through the trainer: uint8 batches normalized in the train step train as
the host-normalized ones do; RandAugment in the step follows the curriculum's magnitudes."""
import chex
import numpy as np
import pytest

from effnet_jax.train import loop
from effnet_jax.train.metrics import read_metrics

from test_curriculum import compiles, curriculum_config
from test_loop import saved_state, tiny_config


def losses(workdir):
  return {r['step']: r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r}


def test_uint8_batches_train_like_host_normalized_ones(tmp_path, embedded_data_dir):
  runs = {}
  for on_device in (False, True):
    workdir = str(tmp_path / str(on_device))
    loop.train_and_evaluate(tiny_config(**{
        'data.data_dir': embedded_data_dir, 'data.eval_split': 'test[:32]',
        'num_train_steps': 3, 'log_every_steps': 1, 'augment.augment_on_device': on_device}),
        workdir)
    runs[on_device] = workdir
  host, device = losses(runs[False]), losses(runs[True])
  assert sorted(host) == sorted(device) == [1, 2, 3]
  for step in host:
    assert device[step] == pytest.approx(host[step], rel=1e-5)
  a, b = saved_state(runs[False], 3), saved_state(runs[True], 3)
  chex.assert_trees_all_close(a['params'], b['params'], rtol=1e-4, atol=1e-6)


def test_device_randaugment_follows_the_curriculum(tmp_path, embedded_data_dir, capsys):
  workdir = str(tmp_path)
  loop.train_and_evaluate(curriculum_config(embedded_data_dir, **{
      'num_train_steps': 4, 'log_every_steps': 1, 'curriculum.num_stages': 2,
      'curriculum.image_sizes': (16, 20), 'augment.augment_on_device': True}), workdir)
  assert 'stage 2/2 from step 2: image 20 px, batch 16, RandAugment 9' in capsys.readouterr().out
  assert [(e['stage'], e['image_size']) for e in compiles(workdir)] == [(1, 16), (2, 20)]
  assert all(np.isfinite(v) for v in losses(workdir).values())
