#!/usr/bin/env bash
# The accelerator check: one command, results as files under OUT (docs/performance.md,
# 'The accelerator check').
#   launch/gpu_check.sh OUT            on a GPU (or TPU) host: the real sizes, about 8 minutes on
#                                      one H100 (compilation included)
#   launch/gpu_check.sh OUT --smoke    the same steps on a CPU at tiny sizes, no timm (the test
#                                      suite runs it: tests/test_gpu_check.py)
# Steps, in order of priority (each one's output in OUT/logs/STEP.log, its exit status and
# seconds in OUT/steps.tsv; a failed or timed-out step does not stop the others; the whole check
# keeps to DEADLINE seconds, default 560, so a 10-minute device session always ends with the
# summary; the exit status is 1 when any step failed):
#   env          versions, devices, CUDA (env.json, env.txt)
#   checks       one-device step parity with the host CPU (float32), bf16 steps finite, Orbax
#                save and restore on the device (checks.json)
#   bench_b0     benchmark, bf16: B0@224 bs256 train and inference beside timm (torch.compile for
#                training, eager inference), compile time into an empty persistent compilation
#                cache, peak memory, share of the HBM bandwidth (bench_b0.json)
#   bench_warm   the B0 train step again from the filled cache: the warm compile time
#   embedded     the embedded default job (configs/default.py) in bf16: test top-1, wall time
#   curriculum   a two-bucket curriculum run of the same job: its compile events
#   randaugment  device RandAugment on 256 images of 224 px, lax.map vs vmap: which one is
#                faster here, and whether 'auto' picks it (randaugment.json)
#   bench_v2s    V2-S@300 bs128 train beside timm (bench_v2s.json)
#   bench_rexnet ReXNet-1.0@224 bs256 train beside timm (bench_rexnet.json)
#   summary      summary.md: every target with the measured value and whether it is met
# Environment: PYTHON (default .venv/bin/python, else python3); the embedded data set comes from
# the Debian package dataset-fashion-mnist or EFFNET_JAX_FASHION_MNIST_DIR (its four idx files);
# JOB_FLAGS: more trainer flags for both runs (e.g. --config.data.data_dir=DIR); WHEELS: a
# directory of wheels installed first without an index (--no-deps), for a host that lacks some
# of requirements.txt and has no network (the checks and the benchmark need no TensorFlow; the
# two trainer runs do).
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: launch/gpu_check.sh OUT [--smoke]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out="$1"
shift
smoke=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    *) usage ;;
  esac
done
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
: > "$out/steps.tsv"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
failed=0

# step NAME LIMIT_SECONDS COMMAND...: runs it with a time limit, logs it, records exit and time.
step() {
  local name="$1" limit="$2"
  shift 2
  local start=$SECONDS code
  echo "== $name ($(date -u +%H:%M:%S))"
  timeout --kill-after=10 "$limit" "$@" > "$out/logs/$name.log" 2>&1
  code=$?
  printf '%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - start))" >> "$out/steps.tsv"
  tail -n 4 "$out/logs/$name.log"
  if [ "$code" -ne 0 ]; then
    echo "   $name FAILED (exit $code; $out/logs/$name.log)"
    failed=1
  fi
}

if [ "$smoke" = 1 ]; then
  # tiny: B0 scaled by phi=-10, its first two stages of one block each, at 32 px with the
  # grouped depthwise conv and XLA's backend optimizations off (each of these compiles faster on
  # a CPU); the trainer on 4 steps
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0"
  stages='[["ir_r1_k3_s2_e1_c16_se0.25"], ["ir_r1_k3_s2_e6_c24_se0.25"]]'
  model_flags=(--override phi=-10 --override depthwise_impl=xla --override "stages=$stages")
  check_flags=(--batch_size 4 --image_size 32 --bf16_steps 2)
  b0=(--case efficientnet_b0:train:8:32 --case efficientnet_b0:infer:8:32)
  warm=(--case efficientnet_b0:train:8:32)
  v2s=("${warm[@]}")  # the step's plumbing only: the B0 program again, from the cache
  rexnet=("${warm[@]}")
  timing=(--warmup 1 --steps 2 --repeats 1)
  timm=()
  job=(--config.num_train_steps=4 --config.batch_size=16 --config.eval_batch_size=64
       --config.model_overrides.depthwise_impl=xla "--config.model_overrides.stages=$stages"
       --config.data.eval_split=test[:64] --config.log_every_steps=2
       --config.checkpoint_every_steps=100)
  curriculum=(--config.curriculum.image_sizes=24,32)
  randaugment=(--batch_size 8 --image_size 32 --repeats 3)
  limits=(env=120 checks=600 bench_b0=600 bench_warm=600 embedded=600 curriculum=600
          randaugment=600 bench_v2s=600 bench_rexnet=600)
  deadline="${DEADLINE:-3600}"
else
  # the checks on a scaled B0 (phi=-6) at 64 px: correctness, with few convolutions to autotune
  model_flags=()
  check_flags=(--batch_size 8 --image_size 64 --bf16_steps 5 --override phi=-6)
  b0=(--case efficientnet_b0:train:256:224 --case efficientnet_b0:infer:256:224)
  warm=(--case efficientnet_b0:train:256:224)
  v2s=(--case efficientnetv2_s:train:128:300)
  rexnet=(--case rexnet_100:train:256:224)
  timing=(--warmup 3 --steps 10 --repeats 3)
  timm=(--vs_timm)
  job=()
  curriculum=(--config.num_epochs=1)
  randaugment=(--batch_size 256 --image_size 224 --repeats 10)
  limits=(env=60 checks=120 bench_b0=200 bench_warm=60 embedded=150 curriculum=90
          randaugment=60 bench_v2s=150 bench_rexnet=120)
  deadline="${DEADLINE:-560}"
fi
read -r -a extra <<< "${JOB_FLAGS:-}"
begin=$SECONDS
# limit STEP: the step's own limit, cut to what is left of the deadline (20 s kept for summary)
limit() {
  local pair own=60 left
  for pair in "${limits[@]}"; do [ "${pair%%=*}" = "$1" ] && own="${pair#*=}"; done
  left=$((deadline - 20 - (SECONDS - begin)))
  [ "$left" -lt "$own" ] && own="$left"
  [ "$own" -lt 1 ] && own=1
  echo "$own"
}
bench() {  # bench STEP CASES...: the benchmark into OUT/STEP.json with the shared cache
  local name="$1"
  shift
  step "$name" "$(limit "$name")" "$python" -m effnet_jax.tools.benchmark "$@" --dtype bf16 \
    "${model_flags[@]}" --compilation_cache "$out/xla_cache" --json "$out/$name.json"
}

if [ -n "${WHEELS:-}" ]; then
  step install 120 "$python" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
fi
step env "$(limit env)" "$python" -m effnet_jax.tools.device_check env --out "$out"
step checks "$(limit checks)" "$python" -m effnet_jax.tools.device_check checks --out "$out" \
  "${check_flags[@]}" "${model_flags[@]}"
bench bench_b0 "${b0[@]}" "${timing[@]}" "${timm[@]}"
bench bench_warm "${warm[@]}" --warmup 1 --steps 2 --repeats 1
step embedded "$(limit embedded)" "$python" -m effnet_jax.main --config configs/default.py \
  --workdir "$out/embedded" --config.dtype=bfloat16 "${job[@]}" "${extra[@]}"
step curriculum "$(limit curriculum)" "$python" -m effnet_jax.main --config configs/default.py \
  --workdir "$out/curriculum" --config.dtype=bfloat16 --config.curriculum.num_stages=2 \
  "${curriculum[@]}" "${job[@]}" "${extra[@]}"
step randaugment "$(limit randaugment)" "$python" -m effnet_jax.tools.device_check randaugment \
  --out "$out" "${randaugment[@]}"
bench bench_v2s "${v2s[@]}" "${timing[@]}" "${timm[@]}"
bench bench_rexnet "${rexnet[@]}" "${timing[@]}" "${timm[@]}"
step summary 60 "$python" -m effnet_jax.tools.device_check summary --out "$out"
cat "$out/summary.md" 2>/dev/null
exit "$failed"
