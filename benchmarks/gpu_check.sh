#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: seconds per epoch of train_nn and per
# iteration of train_scratch on the GPU and on the CPU, and whether both
# devices train the same models up to rounding. Under 5 minutes; no dvc.
#
#   benchmarks/gpu_check.sh [--epochs 3] [--iterations 20]
#
# Python: $PYTHON if set, else the project's .venv, else python3. Exits 2
# with a one-line message when torch sees no CUDA GPU, 1 when the devices
# disagree beyond rounding.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout 290 "$PYTHON" -m benchmarks.bench --gpu-check "$@"
