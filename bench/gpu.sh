#!/usr/bin/env bash
# The GPU run of the ceiling and pipeline benchmarks and the determinism check, as one prepared script for a machine with
# an NVIDIA GPU: bash bench/gpu.sh [--quick|--full] [more bench.perf flags]
#
# Needs the project installed (scripts/setup.sh, with a CUDA build of torch 2.13 for Triton's
# python backend) and RabbitMQ + Redis (scripts/services.sh starts them). Serves a KIND_GPU copy
# of triton_models/ (training/export.py gpu_repository) and writes its results beside the CPU
# ones, never over them: ${OUT:-out/bench-gpu}/{results.json,BENCHMARKS.md,plots/}.
# Nothing here claims a GPU figure: the committed BENCHMARKS.md is the CPU run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "bench/gpu.sh: no NVIDIA GPU here (nvidia-smi -L failed)" >&2
  exit 2
fi
nvidia-smi -L
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c 'import torch, sys; ok = torch.cuda.is_available(); print("torch", torch.__version__, "cuda", ok); sys.exit(0 if ok else 3)'
[ -x scripts/services.sh ] && bash scripts/services.sh
out=${OUT:-out/bench-gpu}
mkdir -p "$out"
ATELIER_BENCH_GPU=1 "$PYTHON" -m bench.perf --gpu --only ceiling --only result_path --only pipeline \
  --output-dir "$out" --workdir "$out/work" "$@"
# the seed contract on the GPU: an item's bytes alone and in any batch (docs/determinism.md)
"$PYTHON" -m bench.determinism --device cuda --results "$out/determinism.json"
rm -rf "$out/work/s3"
echo "bench/gpu.sh: results in $out"
