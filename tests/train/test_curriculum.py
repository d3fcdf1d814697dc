"""Progressive learning: stage values against the official tables, and a 3-stage run end to end
(compiles counted from metrics.jsonl, stage switches, resume in stage 2)."""
import chex
import numpy as np
import pytest

from effnet_jax.config import base_config
from effnet_jax.train import curriculum as cl
from effnet_jax.train import builders, loop
from effnet_jax.train.metrics import read_metrics

from test_loop import saved_state, tiny_config


def stages_of(total_steps=107336, batch_size=4096, image_size=300, ra=10.0, mix=0.0,
              dropout=0.2, **curriculum):
  c = base_config().curriculum
  c.update(dict(num_stages=4) | curriculum)
  return cl.build_stages(c, total_steps=total_steps, batch_size=batch_size, image_size=image_size,
                         randaug_magnitude=ra, mixup_alpha=mix, cutmix_alpha=mix,
                         dropout_rate=dropout)


def test_released_code_values_v2s():
  stages = stages_of()
  assert [s.image_size for s in stages] == [171, 214, 257, 300]
  assert [s.end_step for s in stages] == [26834, 53668, 80502, 107336]
  assert [s.randaug_magnitude for s in stages] == pytest.approx([5, 6.6667, 8.3333, 10], abs=1e-4)
  assert {s.dropout_rate for s in stages} == {0.2}  # not scheduled in the released code
  assert {s.mixup_alpha for s in stages} == {0.0}


@pytest.mark.parametrize('image_size,ra,mix,sizes,mags,mixes', [
    (384, 15.0, 0.2, [192, 256, 320, 384], [5, 8.3333, 11.6667, 15], [0, 0.0667, 0.1333, 0.2]),
    (384, 20.0, 0.5, [192, 256, 320, 384], [5, 10, 15, 20], [0, 0.1667, 0.3333, 0.5]),
    (240, 0.0, 0.0, [156, 184, 212, 240], None, [0, 0, 0, 0]),  # B3 (AutoAugment)
])
def test_released_code_table(image_size, ra, mix, sizes, mags, mixes):
  stages = stages_of(image_size=image_size, ra=ra or 10.0, mix=mix)
  assert [s.image_size for s in stages] == sizes
  if mags:
    assert [s.randaug_magnitude for s in stages] == pytest.approx(mags, abs=1e-4)
  assert [s.mixup_alpha for s in stages] == pytest.approx(mixes, abs=1e-4)
  assert [s.cutmix_alpha for s in stages] == pytest.approx(mixes, abs=1e-4)


def test_paper_schedule_ramps_from_the_minimum_and_schedules_dropout():
  stages = stages_of(schedule='paper', randaug_magnitude_max=15.0, dropout_min=0.1,
                     dropout_max=0.3)
  assert [s.image_size for s in stages] == [128, 185, 242, 300]
  assert [s.randaug_magnitude for s in stages] == pytest.approx([5, 8.3333, 11.6667, 15], abs=1e-4)
  assert [s.dropout_rate for s in stages] == pytest.approx([0.1, 0.1667, 0.2333, 0.3], abs=1e-4)


def test_buckets_explicit_sizes_and_errors():
  assert [s.image_size for s in stages_of(size_multiple=32)] == [160, 224, 256, 288]
  assert [s.image_size for s in stages_of(size_multiple=16)] == [176, 208, 256, 304]
  assert [s.image_size for s in stages_of(image_sizes=(128, 192, 256, 300))] == [128, 192, 256, 300]
  with pytest.raises(ValueError, match='4 stages'):
    stages_of(image_sizes=(128, 192))
  with pytest.raises(ValueError, match='schedule'):
    stages_of(schedule='linear')
  with pytest.raises(ValueError, match='min_image_size'):
    stages_of(min_image_size=400)
  assert len(stages_of(num_stages=0)) == 1  # off: one fixed-size stage


def test_per_stage_batch_sizes_keep_epochs_and_rescale_the_learning_rate():
  stages = stages_of(total_steps=400, batch_size=256, batch_sizes=(512, 512, 256, 128))
  # each stage is a quarter of the images: 100 steps of 256
  assert [s.num_steps for s in stages] == [50, 50, 100, 200]
  assert [s.start_position for s in stages] == [0, 25600, 51200, 76800]
  schedule = lambda count: count * 1.0  # the reference schedule: its argument
  lr = cl.rescale_schedule(schedule, stages, 256)
  # step 60 is 10 steps into stage 2: reference step 100 + 10 * 2, learning rate x2
  assert float(lr(60)) == pytest.approx((100 + 20) * 2.0)
  assert float(lr(250)) == pytest.approx((300 + 50 * 0.5) * 0.5)
  assert cl.rescale_schedule(schedule, stages_of(), 4096) is schedule


def test_stage_at_and_table():
  stages = stages_of(total_steps=12, batch_size=16)
  assert [cl.stage_at(stages, s).index for s in (0, 2, 3, 5, 6, 8, 9, 11, 12)] == [
      0, 0, 1, 1, 2, 2, 3, 3, 3]
  table = cl.format_table(stages, 16, 3.0)
  assert '171' in table and '300' in table and 'RandAug' in table


def bucket_sequence(mix):
  stages = stages_of(total_steps=40, batch_size=16, image_sizes=(16, 24, 32, 40))
  return [builders.image_size_at(stages, cl.stage_at(stages, s), s, 0, mix) for s in range(40)]


def test_bucket_mix_is_a_function_of_seed_and_step():
  fixed, mixed = bucket_sequence(False), bucket_sequence(True)
  assert fixed == [16] * 10 + [24] * 10 + [32] * 10 + [40] * 10
  assert mixed == bucket_sequence(True)  # every host draws the same
  assert mixed[:10] == [16] * 10
  assert set(mixed[30:]) == {16, 24, 32, 40} and all(b <= 24 for b in mixed[10:20])


class StopAfter:
  """Stands in for loop.PreemptionNotice: 'receives SIGTERM' at step n."""

  def __init__(self, n):
    self.n = n

  def __call__(self):
    return self

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False

  def reached(self, step):
    return step >= self.n


def curriculum_config(data_dir, **changes):
  return tiny_config(**{'data.data_dir': data_dir, 'data.eval_split': 'test[:64]',
                        'num_train_steps': 12, 'curriculum.num_stages': 3,
                        'curriculum.image_sizes': (16, 20, 24), 'augment.augment': 'randaugment',
                        'augment.randaug_magnitude': 9.0, 'curriculum.randaug_magnitude_min': 3.0,
                        'checkpoint_every_steps': 100} | changes)


def compiles(workdir):
  return [r for r in read_metrics(workdir) if r.get('event') == 'compile'
          and r['fn'] == 'train_step']


@pytest.mark.long
def test_three_stage_run_compiles_three_times_and_resumes_in_stage_two(
    tmp_path, embedded_data_dir, monkeypatch, capsys):
  # the uninterrupted run, lazily compiled
  full = str(tmp_path / 'full')
  loop.train_and_evaluate(curriculum_config(embedded_data_dir, **{
      'curriculum.aot_compile': False}), full)
  out = capsys.readouterr().out
  assert 'progressive learning, 3 stages' in out
  assert 'stage 2/3 from step 4: image 20 px, batch 16, RandAugment 6' in out
  assert 'stage 3/3 from step 8: image 24 px, batch 16, RandAugment 9' in out
  events = compiles(full)
  assert [(e['stage'], e['image_size']) for e in events] == [(1, 16), (2, 20), (3, 24)]
  sizes = {r['step']: r['train/image_size'] for r in read_metrics(full) if 'train/loss' in r}
  assert sizes == {2: 16, 4: 16, 6: 20, 8: 20, 10: 24, 12: 24}

  # the same run stopped in stage 2 (after step 6), then restarted: ahead-of-time compilation
  # of the remaining stages only, and the same final parameters
  resumed = str(tmp_path / 'resumed')
  config = curriculum_config(embedded_data_dir)
  monkeypatch.setattr(loop, 'PreemptionNotice', StopAfter(6))
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(config, resumed)
  assert [e['stage'] for e in compiles(resumed)] == [1, 2, 3]
  monkeypatch.undo()
  loop.train_and_evaluate(config, resumed)
  assert 'resumed from' in capsys.readouterr().out
  assert [e['stage'] for e in compiles(resumed)] == [1, 2, 3, 2, 3]

  a, b = saved_state(full, 12), saved_state(resumed, 12)
  chex.assert_trees_all_equal(a['params'], b['params'])

  # evaluation at several test resolutions from the finished run's checkpoint
  from effnet_jax.train.evaluation import evaluate_sizes, format_rows
  rows = evaluate_sizes(full, [16, 24])
  final = [r for r in read_metrics(full) if r.get('final')][0]
  assert [r['image_size'] for r in rows] == [16, 24] and rows[0]['step'] == 12
  assert all(r['eval/count'] == 64 for r in rows)
  assert rows[0]['eval/top1'] == final['eval/top1']  # 16 px is the run's own eval size
  assert rows[0]['eval_ema/loss'] == pytest.approx(final['eval_ema/loss'], rel=1e-5)
  assert 'EMA top-1' in format_rows(rows)


def test_bucket_mix_run_trains_the_drawn_sizes_and_compiles_each_once(tmp_path, embedded_data_dir):
  """Two stages (16, 20 px) with bucket_mix: from stage 2 on each step trains at 16 or 20 px as
  drawn from (seed, step); the 16 px batches of stage 2 are resized on device, a program of its
  own (stage 2's regularization), compiled lazily, once."""
  config = curriculum_config(embedded_data_dir, **{
      'num_train_steps': 10, 'log_every_steps': 1, 'curriculum.num_stages': 2,
      'curriculum.image_sizes': (16, 20), 'curriculum.bucket_mix': True,
      'curriculum.aot_compile': False})
  stages = cl.build_stages(config.curriculum, total_steps=10, batch_size=16, image_size=20,
                           randaug_magnitude=9.0, mixup_alpha=0.0, cutmix_alpha=0.0,
                           dropout_rate=0.0)
  expected = {step + 1: builders.image_size_at(stages, cl.stage_at(stages, step), step, config.seed, True)
              for step in range(10)}
  assert set(list(expected.values())[5:]) == {16, 20}, 'pick a seed that draws both sizes'
  workdir = str(tmp_path)
  loop.train_and_evaluate(config, workdir)
  records = [r for r in read_metrics(workdir) if 'train/loss' in r]
  assert {r['step']: r['train/image_size'] for r in records} == expected
  assert all(np.isfinite(r['train/loss']) for r in records)
  events = [(e['stage'], e['image_size']) for e in compiles(workdir)]
  assert sorted(events) == [(1, 16), (2, 16), (2, 20)]
