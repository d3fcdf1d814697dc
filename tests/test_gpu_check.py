"""launch/gpu_check.sh: the accelerator check, run here in its CPU smoke mode so it cannot rot."""
import json
import os
import subprocess

import pytest

from effnet_jax.tools import device_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'launch', 'gpu_check.sh')
STEPS = ['env', 'checks', 'bench_b0', 'bench_warm', 'embedded', 'curriculum', 'randaugment',
         'bench_v2s', 'bench_rexnet', 'summary']


def steps(out):
  with open(os.path.join(out, 'steps.tsv'), encoding='utf-8') as f:
    return [line.rstrip('\n').split('\t') for line in f]


@pytest.mark.long
def test_smoke_mode_runs_every_step_and_summarizes_them(tmp_path, embedded_data_dir):
  out = str(tmp_path / 'check')
  env = dict(os.environ, JOB_FLAGS=f'--config.data.data_dir={embedded_data_dir}')
  done = subprocess.run(['bash', SCRIPT, out, '--smoke'], env=env, capture_output=True,
                        text=True, timeout=900, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  assert [row[:2] for row in steps(out)] == [[name, '0'] for name in STEPS]

  environment = json.load(open(os.path.join(out, 'env.json'), encoding='utf-8'))
  assert environment['backend'] == 'cpu' and environment['packages']['jax']
  checks = json.load(open(os.path.join(out, 'checks.json'), encoding='utf-8'))
  assert [(c['name'], c['ok']) for c in checks] == [('parity', True), ('bf16', True),
                                                     ('checkpoint', True)]
  assert checks[0]['values']['params_rel'] == 0.0  # the CPU against itself: the same program

  cold = json.load(open(os.path.join(out, 'bench_b0.json'), encoding='utf-8'))['results']
  warm = json.load(open(os.path.join(out, 'bench_warm.json'), encoding='utf-8'))['results']
  assert [(r['mode'], r['dtype']) for r in cold] == [('train', 'bf16'), ('infer', 'bf16')]
  # the warm pass loads the train step from the cache the cold pass filled
  assert warm[0]['compile_s'] < cold[0]['compile_s']

  summary = open(os.path.join(out, 'summary.md'), encoding='utf-8').read()
  assert '| parity | ok |' in summary and '| checkpoint | ok |' in summary
  assert 'train-step compile, cold cache' in summary and 'warm cache' in summary
  assert 'embedded default job in bf16, test top-1 | >= 90 % |' in summary
  assert 'Two-bucket curriculum run: 2 train-step compilations at [24, 32] px' in summary
  assert '| efficientnet_b0 train vs timm | >= 2.0x | not measured |' in summary  # no timm
  augment = json.load(open(os.path.join(out, 'randaugment.json'), encoding='utf-8'))
  assert augment['same_bits'] and augment['auto'] == 'loop' and set(augment['impls']) == {
      'loop', 'vmap'}
  assert "| device RandAugment 8x32 px, 'auto' = loop | the faster way, same bits | loop" in summary


def test_a_failing_step_does_not_stop_the_others(tmp_path):
  out = str(tmp_path / 'check')
  done = subprocess.run(['bash', SCRIPT, out], env=dict(os.environ, PYTHON='false'),
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 1
  rows = steps(out)
  assert [row[0] for row in rows] == STEPS and all(row[1] == '1' for row in rows)
  assert 'env FAILED' in done.stdout and os.path.exists(os.path.join(out, 'logs', 'env.log'))


def test_usage(tmp_path):
  done = subprocess.run(['bash', SCRIPT], capture_output=True, text=True, check=False)
  assert done.returncode == 2 and 'usage' in done.stderr
  done = subprocess.run(['bash', SCRIPT, str(tmp_path), '--fast'], capture_output=True,
                        text=True, check=False)
  assert done.returncode == 2


def write(path, value):
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(value, f)


def result(model, mode, impl, rate, compile_s=10.0, fraction=None):
  return {'model': model, 'mode': mode, 'impl': impl, 'images_per_sec': rate,
          'compile_s': compile_s, 'bandwidth_fraction': fraction}


def test_summary_gives_each_target_its_verdict(tmp_path):
  out = str(tmp_path)
  write(os.path.join(out, 'env.json'), {'device_count': 1, 'device_kind': 'NVIDIA H100',
                                        'backend': 'gpu', 'packages': {'jax': '0.10.2'}})
  write(os.path.join(out, 'checks.json'), [
      {'name': 'parity', 'ok': True, 'detail': 'fine', 'seconds': 1.0, 'values': {}},
      {'name': 'bf16', 'ok': False, 'detail': 'Traceback\nValueError: boom', 'seconds': 1.0,
       'values': {}}])
  write(os.path.join(out, 'bench_b0.json'), {'results': [
      result('efficientnet_b0', 'train', 'effnet_jax', 11_000.0, 18.0, 0.74),
      result('efficientnet_b0', 'train', 'timm efficientnet_b0 (compiled)', 5_000.0)]})
  write(os.path.join(out, 'bench_v2s.json'), {'results': [
      result('efficientnetv2_s', 'train', 'effnet_jax', 2_000.0, 31.0),
      result('efficientnetv2_s', 'train', 'timm tf_efficientnetv2_s (compiled)', 1_600.0)]})
  write(os.path.join(out, 'bench_warm.json'), {'results': [
      result('efficientnet_b0', 'train', 'effnet_jax', 11_000.0, 2.5)]})
  text = device_check.summarize(out)
  assert text.startswith('# Accelerator check: 1 x NVIDIA H100 (gpu)')
  assert '| efficientnet_b0 train vs timm | >= 2.0x | 2.20x (11,000 vs 5,000 img/s' in text
  assert '| efficientnetv2_s train vs timm | >= 2.0x | 1.25x' in text and 'NOT met |' in text
  assert '| rexnet_100 train vs timm | >= 2.0x | not measured | not measured |' in text
  assert '| efficientnet_b0 train-step compile, cold cache | <= 20 s | 18.0 s | met |' in text
  assert '| efficientnetv2_s train-step compile, cold cache | <= 20 s | 31.0 s | NOT met |' in text
  assert '| efficientnet_b0 train-step compile, warm cache | <= 5 s | 2.5 s | met |' in text
  assert '| B0 train step, share of HBM bandwidth | >= 70 % | 74 % | met |' in text
  assert '| bf16 | FAILED | ValueError: boom |' in text
  assert '| embedded default job in bf16, test top-1 | >= 90 % | - | not measured |' in text
  assert "| device RandAugment, 'auto' | the faster way, same bits | not measured |" in text
  assert open(os.path.join(out, 'summary.md'), encoding='utf-8').read() == text
  write(os.path.join(out, 'randaugment.json'), {
      'batch_size': 256, 'image_size': 224, 'auto': 'vmap', 'same_bits': True, 'fastest': 'loop',
      'impls': {'loop': {'median_ms': 3.0}, 'vmap': {'median_ms': 9.5}}})
  assert ("| device RandAugment 256x224 px, 'auto' = vmap | the faster way, same bits | "
          "loop 3.00 ms, vmap 9.50 ms; same bits | NOT met |") in device_check.summarize(out)


@pytest.mark.parametrize('text', ['efficientnet_b0:train:8', 'efficientnet_b0:fit:8:32',
                                  'efficientnet_b0:train:0:32', 'no_such_model:train:8:32'])
def test_bad_benchmark_cases_are_refused(text):
  from effnet_jax.tools import benchmark
  with pytest.raises(ValueError):
    benchmark.parse_case(text, 'bf16')
  assert benchmark.parse_case('rexnet_100:latency:1:224', 'f32') == benchmark.Case(
      'rexnet_100', 'latency', 1, 224, 'f32')


def test_the_deadline_cuts_every_step_and_keeps_the_summary(tmp_path):
  slow = tmp_path / 'slow_python'
  slow.write_text('#!/bin/sh\nsleep 5\n')
  slow.chmod(0o755)
  out = str(tmp_path / 'check')
  done = subprocess.run(['bash', SCRIPT, out, '--smoke'],
                        env=dict(os.environ, PYTHON=str(slow), DEADLINE='23'),
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 1
  rows = {row[0]: row for row in steps(out)}
  assert list(rows) == STEPS
  assert rows['env'][1] == '124' and int(rows['env'][2]) <= 4  # cut to the 3 s left
  assert all(rows[name][1] == '124' for name in STEPS[1:-1])  # 1 s each
  assert rows['summary'][1] == '0'  # the summary keeps its own time
