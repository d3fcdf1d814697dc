#!/usr/bin/env bash
# One-time set-up of a fresh machine (idempotent): the embedded data set from Debian's package
# dataset-fashion-mnist (real Fashion-MNIST, no download at run time) and a Python venv in .venv
# with requirements.txt. Run from anywhere; it works in the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    && [ -z "${EFFNET_JAX_FASHION_MNIST_DIR:-}" ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || { $as_root apt-get update -q >/dev/null && $as_root apt-get install -y -q dataset-fashion-mnist >/dev/null; }
fi

python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
