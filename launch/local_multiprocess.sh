#!/usr/bin/env bash
# N processes of effnet_jax.main (or, -m, effnet_jax.evaluate) on this machine, each with D fake
# CPU devices: the multi-host code path (jax.distributed with a coordinator, per-process input,
# global batches, collective checkpoints, process-0 logging) without a cluster.
# tests/train/test_multihost.py runs it.
#
#   launch/local_multiprocess.sh [-n N] [-d D] [-p PORT] [-l LOGDIR] [-m MODULE] -- [ARGS...]
#   launch/local_multiprocess.sh -n 2 -d 2 -- --workdir /tmp/mp --config.num_train_steps=200
#   launch/local_multiprocess.sh -m effnet_jax.evaluate -- --workdir /tmp/mp --image_sizes 28,32
#
#   -n  processes (default 2)            -d  fake CPU devices per process (default 2)
#   -p  coordinator port (default: a free one)
#   -l  where process i writes process_<i>.log (default: a new temporary directory)
#   -m  the module every process runs (default effnet_jax.main; effnet_jax.evaluate also joins)
# Process 0 prints to the terminal; the others log to LOGDIR.
# SIGTERM or SIGINT to this script goes to every process (a preemption drill: they agree on a
# step, checkpoint and exit with 143). When one process fails (any exit status but 0 and 143),
# the others are killed at once and the script exits with that status: rerunning it resumes from
# the last complete checkpoint. The exit status is otherwise process 0's. PYTHON picks the
# interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

num_processes=2
devices=2
port=""
log_dir=""
module=effnet_jax.main
while getopts "n:d:p:l:m:" option; do
  case "$option" in
    n) num_processes="$OPTARG" ;;
    d) devices="$OPTARG" ;;
    p) port="$OPTARG" ;;
    l) log_dir="$OPTARG" ;;
    m) module="$OPTARG" ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;  # usage: the lines above
  esac
done
shift $((OPTIND - 1))
python="${PYTHON:-.venv/bin/python}"
if [ -z "$port" ]; then
  port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
log_dir="${log_dir:-$(mktemp -d -t effnet_jax_processes.XXXXXX)}"
mkdir -p "$log_dir"

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all TERM INT

for ((i = 0; i < num_processes; i++)); do
  log="$log_dir/process_$i.log"
  [ "$i" -eq 0 ] && log=/dev/stdout
  JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$devices" \
  JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" JAX_NUM_PROCESSES="$num_processes" \
  JAX_PROCESS_ID="$i" "$python" -m "$module" "$@" >"$log" 2>&1 &
  pids+=("$!")
done
echo "local_multiprocess: $num_processes processes x $devices CPU devices, coordinator" \
     "127.0.0.1:$port; processes 1.. log to $log_dir" >&2

alive=("${pids[@]}")
first_status=""
failure=""
while [ "${#alive[@]}" -gt 0 ]; do
  finished=""
  code=0
  # (2>/dev/null: bash's notices of killed processes, with their whole command line)
  wait -n -p finished "${alive[@]}" 2>/dev/null || code=$?
  if [ -z "${finished:-}" ]; then
    # A signal interrupted the wait (the trap forwarded it), or processes that ended together
    # were reaped at once and `wait -n` no longer knows them ("no such job"): find one.
    for pid in "${alive[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        finished=$pid
        code=0
        wait "$pid" 2>/dev/null || code=$?
        break
      fi
    done
    [ -n "${finished:-}" ] || continue
  fi
  remaining=()
  for pid in "${alive[@]}"; do [ "$pid" = "$finished" ] || remaining+=("$pid"); done
  alive=("${remaining[@]}")
  [ "$finished" = "${pids[0]}" ] && first_status=$code
  for i in "${!pids[@]}"; do
    [ "${pids[$i]}" != "$finished" ] || echo "local_multiprocess: process $i exited with $code" >&2
  done
  # 143: preempted, every process saves and exits on its own. After any other failure the rest
  # would stop by themselves within the heartbeat timeout (effnet_jax/distributed.py): kill
  # them now. (Not SIGTERM: that asks for a checkpoint at an agreed step, which needs them all.)
  if [ "$code" -ne 0 ] && [ "$code" -ne 143 ] && [ -z "$failure" ]; then
    failure=$code
    if [ "${#alive[@]}" -gt 0 ]; then
      echo "local_multiprocess: killing the other processes; the last complete checkpoint is" \
           "kept: rerunning the same command resumes from it" >&2
      kill -KILL "${alive[@]}" 2>/dev/null || true
    fi
  fi
done
exit "${failure:-$first_status}"
