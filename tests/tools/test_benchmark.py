"""The train/infer benchmark: the CLI end to end at a tiny size, its pure helpers, timm's side."""
import json
import os
import sys

import pytest

from effnet_jax.tools import benchmark
from effnet_jax.tools.benchmark import Case, Result

# depthwise_impl=xla: the unrolled depthwise convolution compiles twice as long
TINY = ['--model', 'efficientnet_b0', '--override', 'phi=-12', '--override',
        'depthwise_impl=xla', '--batch_size', '8',
        '--image_size', '16', '--dtype', 'f32', '--warmup', '0', '--steps', '1', '--repeats', '1']


def test_cli_times_the_train_and_eval_steps(tmp_path, capsys):
  path = tmp_path / 'results.json'
  assert benchmark.main(TINY + ['--mode', 'train', 'infer', '--json', str(path)]) == 0
  out = capsys.readouterr().out
  assert out.count('| efficientnet_b0 | train ') == 2  # the streamed row and the final table
  assert '| implementation ' in out and 'effnet_jax phi=-12 depthwise_impl=xla' in out
  saved = json.loads(path.read_text())
  assert 'cpu' in saved['machine']
  train, infer = saved['results']
  assert (train['mode'], infer['mode']) == ('train', 'infer')
  for r in (train, infer):
    assert r['images_per_sec'] > 0 and r['compile_s'] > 0
    assert r['memory_source'] == 'xla' and r['peak_memory_bytes'] > 0  # the CPU has no stats
    assert r['achieved_flops'] == pytest.approx(r['flops_per_step'] / (r['step_ms'] / 1e3))
    assert r['bandwidth_fraction'] is None  # no known peak bandwidth for a CPU
  # forward + backward + optimizer + EMA vs a forward pass of the same batch
  assert train['flops_per_step'] > 2.5 * infer['flops_per_step']


def test_recipe_config_is_the_models_recipe_at_a_fixed_size():
  config = benchmark.recipe_config(Case('efficientnetv2_s', 'train', 64, 96, 'f32'),
                                   {'depthwise_impl': 'unrolled'})
  assert config.curriculum.num_stages == 0 and config.input.image_size == 96
  assert config.batch_size == 64 and config.dtype == 'float32'
  assert config.optimizer.name == 'rmsprop_tf'
  assert config.optimizer.weight_decay_exclude == 'bn_and_bias'  # V2's recipe, not the base
  assert config.model_overrides.depthwise_impl == 'unrolled'
  assert benchmark.recipe_config(Case('rexnet_100', 'train', 8, 32)).optimizer.name == 'sgd'


def test_synthetic_weights_have_the_scale_of_an_initialised_network():
  import jax
  import numpy as np
  rng = np.random.default_rng(0)
  struct = lambda *shape: jax.ShapeDtypeStruct(shape, np.float32)
  key = lambda name: (jax.tree_util.DictKey(name),)
  kernel = benchmark.synthetic_value(key('kernel'), struct(3, 3, 64, 256), rng)
  assert kernel.dtype == np.float32 and abs(kernel.std() * np.sqrt(9 * 64) - 1) < 0.05
  assert (benchmark.synthetic_value(key('scale'), struct(8), rng) == 1).all()
  assert (benchmark.synthetic_value(key('var'), struct(8), rng) == 1).all()
  assert (benchmark.synthetic_value(key('bias'), struct(8), rng) == 0).all()


def test_median_step_seconds_discards_warmup():
  now = [0.0]
  durations = iter([100.0, 3.0, 1.0, 2.0])  # warm-up, then three repeats of 2 steps

  def run_steps(n):
    now[0] += next(durations)
  seconds = benchmark.median_step_seconds(run_steps, warmup=1, steps=2, repeats=3,
                                          clock=lambda: now[0])
  assert seconds == 1.0


def test_peak_bandwidth_table():
  assert benchmark.peak_bandwidth('NVIDIA H100 80GB HBM3') == 3.35e12
  assert benchmark.peak_bandwidth('NVIDIA H100 PCIe') == 2.0e12
  assert benchmark.peak_bandwidth('cpu') is None
  assert benchmark.peak_bandwidth('cpu', override=5e10) == 5e10


def test_table_ratio_and_rates():
  case = Case('efficientnet_b0', 'train', 256, 224)
  ours = benchmark.with_rates(Result(case, 'effnet_jax', 2000.0, 128.0, 10.0,
                                     flops_per_step=1.28e12, bytes_per_step=2.56e11), 3.35e12)
  assert ours.achieved_flops == pytest.approx(1e13)
  assert ours.bandwidth_fraction == pytest.approx(2e12 / 3.35e12)
  peer = Result(case, 'timm efficientnet_b0 (compiled)', 1000.0, 256.0, 60.0)
  rows = benchmark.table_rows([ours, peer])
  column = benchmark.COLUMNS.index('vs timm')
  assert rows[0][column] == '2.00x' and rows[1][column] == ''
  assert rows[0][benchmark.COLUMNS.index('of BW')] == '60 %'


def test_vs_timm_refuses_an_architecture_timm_does_not_have(capsys):
  with pytest.raises(SystemExit) as exit_info:
    benchmark.main(TINY + ['--vs_timm'])
  assert exit_info.value.code == 2
  assert 'changes it' in capsys.readouterr().err


def test_timm_train_step():
  # In-process (--vs_timm runs it in a worker; test_benchmark_input covers that plumbing):
  # this test session keeps Triton unimportable, so PyTorch and TensorFlow coexist.
  pytest.importorskip('timm')
  result = benchmark.measure_timm(Case('efficientnet_b0', 'train', 2, 32, 'f32'),
                                  compile_train=False, warmup=0, steps=1, repeats=1)
  assert result.impl == 'timm efficientnet_b0 (eager)'
  assert result.images_per_sec > 0 and result.case.batch_size == 2


def test_op_summary_groups_numbered_ops_and_skips_runtime_scopes():
  events = [{'ph': 'X', 'name': 'loop_add_fusion.3', 'dur': 30},
            {'ph': 'X', 'name': 'loop_add_fusion.12', 'dur': 30},
            {'ph': 'X', 'name': 'ynn_fusion.7', 'dur': 40},
            {'ph': 'X', 'name': 'ThunkExecutor::Execute', 'dur': 1000},
            {'ph': 'X', 'name': '$api.py:2479 block_until_ready', 'dur': 1000},
            {'ph': 'i', 'name': 'dot.1', 'dur': 5}]
  assert benchmark.summarize_ops(events) == [('loop_add_fusion', 0.06, 0.6),
                                             ('ynn_fusion', 0.04, 0.4)]


def test_device_randaugment_recipe():
  # its timing: test_interleave_cli_pairs_the_variants_of_a_case
  case = Case('efficientnet_b0', 'train', 8, 16, 'f32')
  config = benchmark.recipe_config(case, device_randaugment=True)
  assert config.augment.augment == 'randaugment' and config.augment.augment_on_device


def test_latencies_are_the_median_and_90th_percentile_of_single_calls():
  ticks = iter([0, 1, 1, 3, 3, 6, 6, 10, 10, 15, 15, 21, 21, 28, 28, 36, 36, 45, 45, 55])
  calls = []
  times = benchmark.single_calls(lambda: calls.append(1), calls=10, clock=lambda: next(ticks))
  assert len(calls) == 10 and times == list(range(1, 11))
  assert benchmark.median_p90(times[::-1]) == (5.5, 10)  # durations 1..10, in any order


def test_latency_mode_times_single_eval_calls(capsys):
  assert benchmark.main(TINY[:8] + ['--batch_size', '4', '--image_size', '16', '--dtype', 'f32',
                                    '--warmup', '1', '--steps', '3', '--repeats', '2',
                                    '--mode', 'latency']) == 0
  row = [line for line in capsys.readouterr().out.splitlines()
         if line.startswith('| efficientnet_b0 | latency')][-1]
  cells = [c.strip() for c in row.strip('|').split('|')]
  median, p90 = float(cells[8]), float(cells[9])
  assert 0 < median <= p90


def test_interleaved_sides_take_turns_and_compare_by_paired_ratios():
  log = []

  class Side:
    def __init__(self, name):
      self.name = name

    def warm(self, n):
      log.append((self.name, 'warm', n))

    def repeat(self, steps):
      log.append((self.name, 'repeat', steps))

  benchmark.measure_interleaved([Side('a'), Side('b')], warmup=2, steps=3, repeats=2,
                                pause=0)
  assert log == [('a', 'warm', 2), ('b', 'warm', 2), ('a', 'repeat', 3), ('b', 'repeat', 3),
                 ('a', 'repeat', 3), ('b', 'repeat', 3)]
  # a slow spell doubling both sides of a round leaves the paired ratio alone
  assert benchmark.paired_ratio([100, 200, 100], [110, 220, 110]) == pytest.approx(1.1)
  case = Case('efficientnet_b0', 'infer', 32, 224, 'f32')
  ours = Result(case, 'effnet_jax', 100.0, 320.0, 3.0, repeat_ms=[300, 600, 300])
  peer = Result(case, 'timm efficientnet_b0 (eager)', 90.0, 352.0, 0.5,
                repeat_ms=[330, 660, 360])
  assert benchmark.table_rows([ours, peer])[0][benchmark.COLUMNS.index('vs timm')] == (
      '1.10x paired')


def test_interleave_cli_pairs_the_variants_of_a_case(capsys):
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'train'))
  from test_loop import TWO_STAGES
  assert benchmark.main(TINY[:-6] + ['--override', f'stages={json.dumps(TWO_STAGES)}',
                                     '--warmup', '0', '--steps', '1', '--repeats', '3',
                                     '--device_randaugment', '--interleave']) == 0
  rows = [line for line in capsys.readouterr().out.splitlines()
          if line.startswith('| efficientnet_b0 | train')]
  assert len(rows) == 4  # streamed and final
  assert '+RandAugment in step' in rows[-1] and 'RandAugment' not in rows[-2]
  assert 'x the time of effnet_jax phi=-12' in rows[-1] and 'paired]' in rows[-1]


def test_timm_worker_takes_its_turns():
  pytest.importorskip('timm')
  worker = benchmark.TimmWorker(Case('efficientnet_b0', 'infer', 2, 32, 'f32'), warmup=1,
                                steps=1, repeats=2)
  worker.repeat()
  worker.repeat()
  result = worker.result()
  assert result.impl == 'timm efficientnet_b0 (eager)' and len(result.repeat_ms) == 2
  assert result.step_ms == pytest.approx(sorted(result.repeat_ms)[0] / 2 +
                                         sorted(result.repeat_ms)[1] / 2)
