#!/usr/bin/env bash
# A training run on a Cloud TPU VM slice (a pod slice of several hosts, or one host), from your
# workstation with the gcloud CLI. One command does everything and is safe to repeat:
#
#   ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 launch/tpu_pod.sh run -- \
#       --config configs/efficientnet.py:variant=b0 --workdir gs://BUCKET/b0 \
#       --config.data.data_dir=gs://BUCKET/tensorflow_datasets
#
# `run` creates the slice (unless it exists; a preempted one is re-created), copies this checkout
# to every worker, installs it (launch/setup.sh, then jax[tpu]), starts effnet_jax.main on every
# worker at once (--worker=all; each host is one JAX process, jax.distributed finds the others
# from the TPU metadata), and streams worker 0's log. Ctrl-C stops the streaming, not the run.
# After a preemption, the same command resumes from the last checkpoint in the workdir.
#
# Steps on their own:  create | setup | start -- MAIN_ARGS | logs | stop | status | delete
#   stop: SIGTERM to every worker's trainer (it checkpoints at an agreed step and exits).
#   evaluate -- EVALUATE_ARGS: effnet_jax.evaluate on every worker (one process each, every host
#     reads its share of the eval split; worker 0 prints the table), e.g.
#     launch/tpu_pod.sh evaluate -- --workdir gs://BUCKET/b0 --image_sizes 224,256,288
#
# Settings (environment): ZONE (required), TPU_NAME (effnet-jax), ACCELERATOR_TYPE (v4-32),
# RUNTIME_VERSION (tpu-ubuntu2204-base for v4, v2-alpha-tpuv5-lite for v5e), PROJECT (gcloud's
# default), SPOT=1 (a Spot slice: cheaper, preemptible).
# The workdir must be a bucket (gs://...) that every worker can write: checkpoints are written
# by all hosts together; the XLA compilation cache goes to WORKDIR/compilation_cache unless
# --config.compilation_cache_dir says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/lib.sh

TPU_NAME="${TPU_NAME:-effnet-jax}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-32}"
case "$ACCELERATOR_TYPE" in
  v5litepod-*|v5e-*) default_runtime=v2-alpha-tpuv5-lite ;;
  v5p-*) default_runtime=v2-alpha-tpuv5 ;;
  *) default_runtime=tpu-ubuntu2204-base ;;
esac
RUNTIME_VERSION="${RUNTIME_VERSION:-$default_runtime}"
REMOTE_DIR='~/effnet_jax'
REMOTE_LOG='~/effnet_jax.log'
REMOTE_PID='~/effnet_jax.pid'
JAX_VERSION="$(sed -n 's/^jax==//p' requirements.txt)"

usage() { sed -n '2,26p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
command="$1"
shift
[ "${1:-}" != "--" ] || shift
: "${ZONE:?set ZONE, e.g. ZONE=us-central2-b (v4) or ZONE=us-west4-a (v5e)}"

gcloud_tpu() {  # gcloud compute tpus tpu-vm VERB [ARGS...] with the zone and project
  local verb="$1"
  shift
  gcloud compute tpus tpu-vm "$verb" "$@" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"}
}
on_workers() {  # on_workers WORKER COMMAND: run a shell command on worker N or all
  gcloud_tpu ssh "$TPU_NAME" --worker="$1" --command="$2"
}
state() {
  gcloud_tpu describe "$TPU_NAME" --format='value(state)' 2>/dev/null || true
}

create() {
  local current
  current="$(state)"
  if [ "$current" = PREEMPTED ] || [ "$current" = TERMINATED ]; then
    echo "tpu_pod: $TPU_NAME is $current: deleting it to create it again" >&2
    gcloud_tpu delete "$TPU_NAME" --quiet
    current=""
  fi
  if [ -n "$current" ]; then
    echo "tpu_pod: $TPU_NAME exists ($current)" >&2
    return
  fi
  gcloud_tpu create "$TPU_NAME" --accelerator-type="$ACCELERATOR_TYPE" \
      --version="$RUNTIME_VERSION" ${SPOT:+--spot}
}

setup() {  # this checkout (tracked files, with uncommitted edits) on every worker, installed
  local archive
  archive="$(mktemp -t effnet_jax.XXXXXX.tar.gz)"
  git ls-files -z | tar czf "$archive" --null -T -
  gcloud_tpu scp "$archive" "$TPU_NAME":effnet_jax.tar.gz --worker=all
  rm -f "$archive"
  # The TPU VM images are Ubuntu 22.04 with Python 3.10; jax needs 3.11 (Ubuntu's python3.11).
  on_workers all "mkdir -p $REMOTE_DIR && tar xzf ~/effnet_jax.tar.gz -C $REMOTE_DIR \
      && cd $REMOTE_DIR \
      && { command -v python3.11 >/dev/null || { sudo apt-get update -q >/dev/null \
           && sudo apt-get install -y -q python3.11 python3.11-venv >/dev/null; }; } \
      && SETUP_PYTHON=python3.11 launch/setup.sh \
      && .venv/bin/pip install -q -U 'jax[tpu]==$JAX_VERSION' \
         -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
}

main_args() {  # the trainer's arguments, with the compilation cache on the shared workdir
  local workdir flag
  workdir="$(workdir_from_args "$@")"
  case "$workdir" in
    gs://*) ;;
    *) echo "tpu_pod: --workdir must be a bucket (gs://...) that every worker writes to," \
            "got '${workdir}'" >&2; exit 2 ;;
  esac
  printf '%q ' "$@"
  flag="$(cache_flag "$workdir" "$@")"
  if [ -n "$flag" ]; then printf '%q ' "$flag"; fi
}

start() {  # every worker at once; each runs one process of the same command, in the background
  local args
  args="$(main_args "$@")"
  on_workers all "cd $REMOTE_DIR || exit 1
      if [ -f $REMOTE_PID ] && kill -0 \$(cat $REMOTE_PID) 2>/dev/null; then
        echo \"worker \$(hostname): a run is going on (launch/tpu_pod.sh stop)\" >&2; exit 1
      fi
      nohup .venv/bin/python -m effnet_jax.main $args > $REMOTE_LOG 2>&1 < /dev/null &
      echo \$! > $REMOTE_PID"
}

evaluate() {  # in the foreground: gcloud prints what the workers print (worker 0: the table)
  local args
  args="$(printf '%q ' "$@")"
  on_workers all "cd $REMOTE_DIR && .venv/bin/python -m effnet_jax.evaluate $args"
}

logs() {  # worker 0 is process 0: the progress bar, evaluations and the final line
  on_workers 0 "tail -n +1 -F $REMOTE_LOG"
}

stop() {
  on_workers all "[ -f $REMOTE_PID ] && kill -TERM \$(cat $REMOTE_PID) 2>/dev/null || true"
}

status() {
  echo "tpu_pod: $TPU_NAME ($ACCELERATOR_TYPE, $ZONE): $(state)"
  on_workers 0 "tail -n 3 $REMOTE_LOG" || true
}

case "$command" in
  run) main_args "$@" >/dev/null; create; setup; start "$@"; logs ;;
  create) create ;;
  setup) setup ;;
  start) start "$@" ;;
  evaluate) evaluate "$@" ;;
  logs) logs ;;
  stop) stop ;;
  status) status ;;
  delete) gcloud_tpu delete "$TPU_NAME" --quiet ;;
  *) usage ;;
esac
