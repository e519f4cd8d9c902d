#!/usr/bin/env bash
# Our train step on a GPU machine: T5-large (bf16, batch filling the device) and Prost-2.7B,
# step time, tokens/s, MFU against the chip's peak and peak memory, written to a JSON file;
# also T5-large with cuDNN attention and unscanned, each compared with its baseline.
#
#   bash bench/gpu_check.sh [--no-install] [--out FILE] [--budget-s SECONDS] [--quick]
#
# Installs the project with the `cuda` extra first (pip install -e ".[cuda]"); --no-install
# uses the jax already installed (a machine without a package index: jax with its CUDA
# plugin, flax, optax and gin-config must be there). The rest is bench/gpu_check.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
INSTALL=1
ARGS=()
while (($#)); do
  case "$1" in
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
if ((INSTALL)); then
  "$PY" -m pip install -q -e "$HERE/..[cuda]"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader
# The whole device for one process; TensorFlow (the input pipeline's) stays off the GPU.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$HERE/gpu_check.py" "${ARGS[@]}"
