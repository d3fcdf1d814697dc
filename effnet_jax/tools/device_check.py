"""The accelerator check's Python parts (``launch/gpu_check.sh`` runs them; docs/performance.md).

  python -m effnet_jax.tools.device_check env --out DIR       # env.json, env.txt
  python -m effnet_jax.tools.device_check checks --out DIR    # checks.json (exit 1: one failed)
  python -m effnet_jax.tools.device_check randaugment --out DIR  # randaugment.json
  python -m effnet_jax.tools.device_check summary --out DIR   # summary.md from every result

``checks`` runs on the default backend (the GPU where there is one):

* parity: one train step of the real train step (``train/step.py``, the model's recipe, float32,
  full-precision matmuls) on one device of the default backend against the same step on the
  host CPU, from the same synthetic state and batch: the loss and every updated parameter;
* bf16: ``--bf16_steps`` train steps in bfloat16 on the device: every loss and parameter finite;
* checkpoint: the device state saved with the trainer's Orbax manager, restored onto the device
  and compared leaf by leaf (values, dtypes, shardings on the device).

``randaugment`` times device RandAugment (``data/device_augment.py``, N=2, magnitude 9) on a
random uint8 batch both ways, ``lax.map`` over the images and ``vmap`` (every op on every image,
then a select), checks that they give the same bits, and records which one ``impl='auto'`` picks
on this backend: the summary says whether that is the faster one.

``summary`` reads what the other steps wrote (``bench_*.json``, the
embedded job's and the curriculum run's workdirs, ``steps.tsv``) and writes ``summary.md``: each
target of the accelerator issue with the measured value and whether it is met.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback

from effnet_jax import cli

PROGRAM = 'effnet_jax.tools.device_check'
PACKAGES = ('jax', 'jaxlib', 'jax-cuda12-plugin', 'jax-cuda12-pjrt', 'libtpu', 'flax', 'optax',
            'orbax-checkpoint', 'chex', 'tensorflow', 'tensorflow-datasets', 'torch', 'timm')

# The targets of one H100 in bfloat16 (the accelerator issue): timm's rates are the ones
# measured in the same run; these are the ratios and limits.
TARGETS = {'train_vs_timm': 2.0, 'infer_vs_timm': 2.0, 'compile_cold_s': 20.0,
           'compile_warm_s': 5.0, 'b0_bandwidth_fraction': 0.70, 'embedded_top1': 0.90}


# the benchmark steps of launch/gpu_check.sh (each into OUT/STEP.json) with an empty cache
BENCH_STEPS = ('bench_b0', 'bench_v2s', 'bench_rexnet')


# ---- env ----

def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo', encoding='utf-8', errors='replace') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def environment() -> dict:
  """Versions, devices and host of this process (imports jax, not torch)."""
  import jax
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  devices = jax.devices()
  env = {
      'python': sys.version.split()[0], 'platform': platform.platform(),
      'cpu_model': cpu_model(), 'host_cores': len(os.sched_getaffinity(0)),
      'backend': jax.default_backend(), 'device_count': len(devices),
      'device_kind': devices[0].device_kind, 'devices': [str(d) for d in devices],
      'packages': versions, 'XLA_FLAGS': os.environ.get('XLA_FLAGS', ''),
  }
  backend = jax.extend.backend.get_backend() if hasattr(jax, 'extend') else None
  if backend is not None:
    env['platform_version'] = getattr(backend, 'platform_version', '')
  return env


def write_env(out: str) -> dict:
  import jax
  env = environment()
  with open(os.path.join(out, 'env.json'), 'w', encoding='utf-8') as f:
    json.dump(env, f, indent=1)
  import contextlib
  import io
  text = io.StringIO()
  with contextlib.redirect_stdout(text):
    try:
      jax.print_environment_info()
    except Exception as error:  # noqa: BLE001  (nvidia-smi missing, ...)
      print(f'print_environment_info failed: {error}')
  with open(os.path.join(out, 'env.txt'), 'w', encoding='utf-8') as f:
    f.write(text.getvalue())
  return env


# ---- checks ----

@dataclasses.dataclass
class Check:
  name: str
  ok: bool
  detail: str
  seconds: float
  values: dict = dataclasses.field(default_factory=dict)


def _setup(model: str, batch_size: int, image_size: int, dtype: str, overrides: dict,
           devices):
  """The benchmark's train-step case (recipe, synthetic state, random batch) on ``devices``,
  without Mixup/CutMix (the same batch on every side)."""
  from effnet_jax.tools import benchmark
  case = benchmark.Case(model, 'train', batch_size, image_size, dtype)
  config = benchmark.recipe_config(case, overrides)
  config.augment.mixup_alpha = config.augment.cutmix_alpha = 0.0
  return benchmark.build_case(case, devices=devices, config=config)


def check_parity(model: str, batch_size: int, image_size: int, overrides: dict) -> Check:
  """One float32 train step on the default device vs on the host CPU (same state, batch, key)."""
  import jax
  import numpy as np
  t0 = time.time()
  rng = jax.random.key(0)
  results = []
  with jax.default_matmul_precision('highest'):
    for devices in ([jax.devices()[0]], [jax.devices('cpu')[0]]):
      _, _, state, batch, step = _setup(model, batch_size, image_size, 'f32', overrides, devices)
      new_state, metrics = step(state, batch, rng)
      results.append((float(metrics['loss']), jax.tree.map(np.asarray, new_state.params)))
  (loss_d, params_d), (loss_c, params_c) = results
  worst = 0.0
  for a, b in zip(jax.tree.leaves(params_d), jax.tree.leaves(params_c)):
    scale = max(float(np.max(np.abs(b))), 1e-6)
    worst = max(worst, float(np.max(np.abs(a - b))) / scale)
  loss_rel = abs(loss_d - loss_c) / max(abs(loss_c), 1e-6)
  ok = loss_rel < 1e-4 and worst < 1e-4
  return Check('parity', ok, f'loss {loss_d:.6f} on {jax.devices()[0].platform} vs {loss_c:.6f} '
               f'on cpu (relative {loss_rel:.1e}); parameters after the step: largest '
               f'difference {worst:.1e} of the tensor\'s largest value (limit 1e-4)',
               time.time() - t0, {'loss_rel': loss_rel, 'params_rel': worst})


def check_bf16(model: str, batch_size: int, image_size: int, overrides: dict,
               steps: int) -> Check:
  """``steps`` bfloat16 train steps on the default device: every loss and parameter finite."""
  import jax
  import numpy as np
  t0 = time.time()
  _, _, state, batch, step = _setup(model, batch_size, image_size, 'bf16', overrides,
                                    [jax.devices()[0]])
  losses = []
  for i in range(steps):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  finite = all(np.isfinite(losses)) and all(
      bool(np.all(np.isfinite(np.asarray(leaf, np.float32)))) for leaf in
      jax.tree.leaves(state.params))
  return Check('bf16', finite, f'{steps} bfloat16 steps, losses '
               + ', '.join(f'{v:.4f}' for v in losses) + ('' if finite else ': NOT FINITE'),
               time.time() - t0, {'losses': losses})


def check_checkpoint(model: str, batch_size: int, image_size: int, overrides: dict,
                     directory: str) -> Check:
  """The device state through the trainer's Orbax manager: saved, restored, compared."""
  import jax
  import numpy as np

  from effnet_jax import checkpoints
  t0 = time.time()
  _, mesh, state, _, _ = _setup(model, batch_size, image_size, 'f32', overrides,
                                [jax.devices()[0]])
  record = checkpoints.RunRecord(model=model, model_overrides=overrides,
                                 num_classes=1000, class_names=None, image_size=image_size,
                                 eval_image_size=image_size, config={'model': model})
  manager = checkpoints.create_manager(directory)
  checkpoints.save(manager, 1, state, record, force=True)
  checkpoints.wait_until_finished(manager)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                          state)
  restored = checkpoints.restore(manager, 1, abstract)
  manager.close()
  pairs = list(zip(jax.tree.leaves(state), jax.tree.leaves(restored)))
  equal = all(a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
              for a, b in pairs)
  on_device = all(set(b.devices()) == {jax.devices()[0]} for _, b in pairs)
  return Check('checkpoint', equal and on_device,
               f'{len(pairs)} arrays saved and restored in {directory}: '
               f'{"equal" if equal else "DIFFERENT"}, '
               f'{"on " + str(jax.devices()[0]) if on_device else "NOT on the device"}',
               time.time() - t0)


def run_checks(out: str, model: str, batch_size: int, image_size: int, overrides: dict,
               bf16_steps: int) -> list[Check]:
  results = []
  for name, run in (
      ('parity', lambda: check_parity(model, batch_size, image_size, overrides)),
      ('bf16', lambda: check_bf16(model, batch_size, image_size, overrides, bf16_steps)),
      ('checkpoint', lambda: check_checkpoint(model, batch_size, image_size, overrides,
                                              os.path.join(out, 'checkpoint')))):
    t0 = time.time()
    try:
      results.append(run())
    except Exception:  # noqa: BLE001  (a failed check is reported; the others still run)
      results.append(Check(name, False, traceback.format_exc(limit=8), time.time() - t0))
    print(f'{results[-1].name}: {"ok" if results[-1].ok else "FAILED"} '
          f'({results[-1].seconds:.1f} s): {results[-1].detail}', flush=True)
  with open(os.path.join(out, 'checks.json'), 'w', encoding='utf-8') as f:
    json.dump([dataclasses.asdict(c) for c in results], f, indent=1)
  return results


# ---- randaugment ----

def time_randaugment(out: str, batch_size: int, image_size: int, repeats: int,
                     magnitude: float = 9.0, num_layers: int = 2) -> dict:
  """Device RandAugment's two implementations on the default device: compile seconds, median
  and fastest milliseconds per batch over ``repeats`` calls, the same bits, what 'auto' picks."""
  import jax
  import numpy as np
  from effnet_jax.data import device_augment
  from effnet_jax.tools.benchmark import single_calls

  images = jax.device_put(np.random.default_rng(0).integers(
      0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8))
  key = jax.random.key(0)
  result = {'batch_size': batch_size, 'image_size': image_size, 'num_layers': num_layers,
            'magnitude': magnitude, 'device_kind': jax.devices()[0].device_kind,
            'auto': device_augment.resolve('auto'),
            'impls': {}}
  outputs = {}
  for impl in device_augment.IMPLS:
    fn = jax.jit(lambda k, x, impl=impl: device_augment.randaugment(k, x, num_layers, magnitude,
                                                                    impl=impl))
    t0 = time.perf_counter()
    compiled = fn.lower(key, images).compile()
    compile_s = time.perf_counter() - t0
    outputs[impl] = np.asarray(compiled(key, images))
    keys = iter(jax.random.split(key, repeats))  # each call draws other ops
    times = single_calls(lambda: compiled(next(keys), images).block_until_ready(), repeats)
    result['impls'][impl] = {'compile_s': compile_s, 'median_ms': 1e3 * float(np.median(times)),
                             'min_ms': 1e3 * min(times)}
    print(f'{impl}: compile {compile_s:.1f} s, median {result["impls"][impl]["median_ms"]:.2f} '
          f'ms per batch of {batch_size}x{image_size} px', flush=True)
  first, *others = outputs.values()
  result['same_bits'] = all(np.array_equal(first, o) for o in others)
  result['fastest'] = min(result['impls'], key=lambda i: result['impls'][i]['median_ms'])
  print(f"same bits: {result['same_bits']}; fastest: {result['fastest']}; "
        f"'auto' picks: {result['auto']}", flush=True)
  with open(os.path.join(out, 'randaugment.json'), 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=1)
  return result


# ---- summary ----

def _read_json(path: str):
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _metrics(workdir: str) -> list[dict]:
  if not os.path.isdir(workdir):
    return []
  from effnet_jax.train.metrics import MetricsError, read_metrics
  try:
    return read_metrics(workdir)
  except (MetricsError, OSError, ValueError):
    return []


def _verdict(value, limit, higher_is_better: bool = True) -> str:
  if value is None:
    return 'not measured'
  met = value >= limit if higher_is_better else value <= limit
  return 'met' if met else 'NOT met'


def summarize(out: str) -> str:
  """``summary.md``: the targets, what was measured, the steps' exit statuses."""
  env = _read_json(os.path.join(out, 'env.json')) or {}
  checks = _read_json(os.path.join(out, 'checks.json')) or []
  cold, seen = [], set()
  for name in BENCH_STEPS:  # the first result of each (model, mode, implementation)
    for r in (_read_json(os.path.join(out, f'{name}.json')) or {}).get('results', []):
      if (r['model'], r['mode'], r['impl']) not in seen:
        seen.add((r['model'], r['mode'], r['impl']))
        cold.append(r)
  warm = (_read_json(os.path.join(out, 'bench_warm.json')) or {}).get('results', [])
  lines = [f'# Accelerator check: {env.get("device_count", "?")} x '
           f'{env.get("device_kind", "?")} ({env.get("backend", "?")})', '',
           f'Host: {env.get("cpu_model", "?")}, {env.get("host_cores", "?")} cores; '
           + ', '.join(f'{k} {v}' for k, v in sorted(env.get('packages', {}).items())), '']
  if os.path.exists(os.path.join(out, 'steps.tsv')):
    lines += ['| step | exit | seconds |', '| --- | --- | --- |']
    with open(os.path.join(out, 'steps.tsv'), encoding='utf-8') as f:
      for row in f:
        name, code, seconds = (row.rstrip('\n').split('\t') + ['', '', ''])[:3]
        lines.append(f'| {name} | {code} | {seconds} |')
    lines.append('')
  lines += ['| check | result | detail |', '| --- | --- | --- |']
  for c in checks:
    detail = c['detail'].strip().splitlines()[-1] if c['detail'].strip() else ''
    lines.append(f'| {c["name"]} | {"ok" if c["ok"] else "FAILED"} | {detail[:300]} |')
  lines += ['', '| target | limit | measured | verdict |', '| --- | --- | --- | --- |']

  def rate(impl_prefix, model, mode, results=cold):
    for r in results:
      if r['model'] == model and r['mode'] == mode and r['impl'].startswith(impl_prefix):
        return r
    return None

  for model, mode, key in (('efficientnet_b0', 'train', 'train_vs_timm'),
                           ('efficientnetv2_s', 'train', 'train_vs_timm'),
                           ('rexnet_100', 'train', 'train_vs_timm'),
                           ('efficientnet_b0', 'infer', 'infer_vs_timm')):
    ours, timm = rate('effnet_jax', model, mode), rate('timm', model, mode)
    ratio = ours['images_per_sec'] / timm['images_per_sec'] if ours and timm else None
    shown = (f'{ratio:.2f}x ({ours["images_per_sec"]:,.0f} vs {timm["images_per_sec"]:,.0f} '
             f'img/s, {timm["impl"]})' if ratio else 'not measured')
    lines.append(f'| {model} {mode} vs timm | >= {TARGETS[key]}x | {shown} | '
                 f'{_verdict(ratio, TARGETS[key])} |')
  for label, results, key in (('cold', cold, 'compile_cold_s'), ('warm', warm, 'compile_warm_s')):
    for r in results:
      if r['impl'].startswith('effnet_jax') and r['mode'] == 'train':
        lines.append(f'| {r["model"]} train-step compile, {label} cache | <= '
                     f'{TARGETS[key]:.0f} s | {r["compile_s"]:.1f} s | '
                     f'{_verdict(r["compile_s"], TARGETS[key], higher_is_better=False)} |')
  b0 = rate('effnet_jax', 'efficientnet_b0', 'train')
  fraction = b0.get('bandwidth_fraction') if b0 else None
  lines.append(f'| B0 train step, share of HBM bandwidth | >= 70 % | '
               f'{"-" if fraction is None else f"{100 * fraction:.0f} %"} | '
               f'{_verdict(fraction, TARGETS["b0_bandwidth_fraction"])} |')
  final = [r for r in _metrics(os.path.join(out, 'embedded')) if r.get('final')]
  top1 = final[-1].get('eval/top1') if final else None
  wall = final[-1].get('wall_seconds') if final else None
  lines.append(f'| embedded default job in bf16, test top-1 | >= 90 % | '
               f'{"-" if top1 is None else f"{100 * top1:.2f} % in {wall:.0f} s"} | '
               f'{_verdict(top1, TARGETS["embedded_top1"])} |')
  augment = _read_json(os.path.join(out, 'randaugment.json'))
  if augment:
    impls = augment['impls']
    shown = ', '.join(f'{impl} {impls[impl]["median_ms"]:.2f} ms' for impl in impls)
    verdict = 'met' if augment['fastest'] == augment['auto'] and augment['same_bits'] else 'NOT met'
    lines.append(f"| device RandAugment {augment['batch_size']}x{augment['image_size']} px, "
                 f"'auto' = {augment['auto']} | the faster way, same bits | {shown}; "
                 f"{'same' if augment['same_bits'] else 'DIFFERENT'} bits | {verdict} |")
  else:
    lines.append("| device RandAugment, 'auto' | the faster way, same bits | not measured | "
                 "not measured |")
  compiles = [r for r in _metrics(os.path.join(out, 'curriculum'))
              if r.get('event') == 'compile' and r.get('fn') == 'train_step']
  sizes = sorted({r['image_size'] for r in compiles})
  lines += ['', f'Two-bucket curriculum run: {len(compiles)} train-step compilations at '
            f'{sizes} px: ' + ', '.join(f'{r["image_size"]} px {r["seconds"]:.1f} s'
                                        for r in compiles)]
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out, 'summary.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  return text


def main(argv=None) -> int:
  parser = cli.ArgumentParser(PROGRAM, description=__doc__.split('\n')[0])
  parser.add_argument('what', choices=('env', 'checks', 'randaugment', 'summary'))
  parser.add_argument('--out', required=True, help='directory for the results')
  parser.add_argument('--model', default='efficientnet_b0')
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--image_size', type=int, default=224)
  parser.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                      help='model override of the checks (repeatable), e.g. phi=-10')
  parser.add_argument('--bf16_steps', type=int, default=5)
  parser.add_argument('--repeats', type=int, default=10, help='timed calls (randaugment)')
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  if args.what == 'env':
    env = write_env(args.out)
    print(json.dumps(env, indent=1))
    return 0
  if args.what == 'summary':
    print(summarize(args.out))
    return 0
  if args.what == 'randaugment':
    if args.repeats < 1:
      parser.error(f'--repeats must be at least 1, got {args.repeats}')
    time_randaugment(args.out, args.batch_size, args.image_size, args.repeats)
    return 0
  from effnet_jax.tools.benchmark import _parse_overrides
  try:
    overrides = _parse_overrides(args.override)
  except ValueError as error:
    parser.error(str(error))
  results = run_checks(args.out, args.model, args.batch_size, args.image_size, overrides,
                       args.bf16_steps)
  return 0 if all(c.ok for c in results) else 1


if __name__ == '__main__':
  sys.exit(main())
