#!/usr/bin/env bash
# A training run on a multi-node GPU cluster with Slurm: one JAX process per GPU, on every node.
#
#   sbatch --nodes=4 launch/slurm_gpu.sh --config configs/efficientnet.py:variant=b0 \
#       --workdir /shared/ckpt/b0 --config.data.manual_dir=/shared/imagenet
#
# Set-up once, on shared storage that every node sees (the checkout, its .venv, the workdir):
#   launch/setup.sh && .venv/bin/pip install -U "jax[cuda12]==$(sed -n 's/^jax==//p' requirements.txt)"
#
# Process 0 (the first task on the first node) is the coordinator: this script reads its host
# from the allocation and gives every task JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and its
# JAX_PROCESS_ID (= SLURM_PROCID); JAX gives each task the GPU of its SLURM_LOCALID. The XLA
# compilation cache goes to WORKDIR/compilation_cache (shared) unless
# --config.compilation_cache_dir says otherwise.
# Resilience: 180 s before the time limit, and on preemption, Slurm sends SIGTERM to every task;
# the processes agree on a step, checkpoint and exit with 143, and this script requeues the job,
# which resumes from that checkpoint. When a task fails (any other non-zero exit, or killed),
# srun ends the others (--kill-on-bad-exit; they also stop by themselves within seconds, with
# exit code 75: effnet_jax/distributed.py) and the job ends without a requeue; submitting the
# same command again resumes from the last complete checkpoint.
# Adjust the #SBATCH lines (or override them on the sbatch command line) for your cluster: GPUs
# per node, CPUs, time limit, partition.
#SBATCH --job-name=effnet_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=effnet_jax-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"

: "${SLURM_JOB_ID:?submit this script with sbatch (see its first lines)}"
# All hostnames, then the first: `| head -n 1` would end scontrol with SIGPIPE on a long node
# list, which pipefail turns into a failed job.
hostnames="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"
coordinator_host="${hostnames%%$'\n'*}"
: "${coordinator_host:?scontrol show hostnames gave no host for $SLURM_JOB_NODELIST}"
port=$((20000 + SLURM_JOB_ID % 20000))  # a job's own port: jobs sharing a node do not collide

source launch/lib.sh
workdir="$(workdir_from_args "$@")"
: "${workdir:?give --workdir on storage that every node sees}"
cache_flag=()
flag="$(cache_flag "$workdir" "$@")"
if [ -n "$flag" ]; then cache_flag=("$flag"); fi

echo "slurm_gpu: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}), $SLURM_NTASKS processes on" \
     "$SLURM_JOB_NUM_NODES nodes, coordinator $coordinator_host:$port"
export JAX_COORDINATOR_ADDRESS="$coordinator_host:$port" JAX_NUM_PROCESSES="$SLURM_NTASKS"
status=0
# Each task sets its own process id (single quotes: expanded by the task, not here).
srun --kill-on-bad-exit=1 bash -c 'JAX_PROCESS_ID=$SLURM_PROCID exec .venv/bin/python \
    -m effnet_jax.main "$@"' effnet_jax "$@" "${cache_flag[@]}" || status=$?

if [ "$status" -eq 143 ]; then  # preempted or out of time, with a checkpoint: continue
  echo "slurm_gpu: checkpointed on SIGTERM; requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
