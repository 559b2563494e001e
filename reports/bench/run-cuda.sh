#!/usr/bin/env bash
# The CPU benchmark's twin on a CUDA machine: every preset against cuDNN at both sizes, forward
# +backward and forward alone, written to reports/bench/cuda-<card>.{md,csv,png}.
# Needs a CUDA build of torch in the venv. Presets without a fused kernel run the reference
# loop there (the C++ kernels are CPU-only and are not built); the goal is <= 3x cuDNN.
# Stops after 5 minutes whatever happens (a full run should take 1-3).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec timeout 300 "${PYTHON:-.venv/bin/python}" -m ablate bench --device cuda --repeats 11 "$@"
