#!/usr/bin/env bash
# The CUDA-machine benchmarks, in one run of under five minutes (H100/H200-class GPU):
#   1. one-epoch evaluation, paper-style DataLoader trainer vs our runner, 3 seeds, on learnable
#      CIFAR-shaped synthetic data (bench.eval_speed; needs no download);
#   2. the sandbox's overhead on the same evaluation, bare vs warm Docker vs a container per
#      candidate (bench.sandbox_overhead; the process backend where no Docker engine answers);
#   3. the shared-GPU checks: the memory cap holds and a GPU OOM is the candidate's `oom`
#      (bench.gpu_checks).
# Usage: bash bench/gpu.sh [OUT_DIR]   (JSON files and a log land in OUT_DIR, default bench/out)
# NASLOOP_BENCH_SMOKE=1 runs a tiny CPU version of 1 and 2 (what the tests run on CPU machines).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if [[ ${NASLOOP_BENCH_SMOKE:-0} == 1 ]]; then
    device=cpu
    speed=(--dataset mnist5k --seeds 0 --train-limit 512 --threads 2)
    overhead=(--dataset mnist5k --train-limit 512 --repeats 1 --backends process)
else
    device=cuda
    python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
        echo "gpu.sh: torch sees no CUDA device (set NASLOOP_BENCH_SMOKE=1 for the CPU smoke run)" >&2
        exit 2
    }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    speed=(--dataset synthetic-cifar --seeds 0 1 2 --threads "$(nproc)")
    if docker info >/dev/null 2>&1 && python -m sandbox.image build >/dev/null; then
        backends=(docker-warm docker)
    else
        echo "gpu.sh: no Docker engine here: measuring the process sandbox instead" >&2
        backends=(process)
    fi
    overhead=(--dataset synthetic-cifar --repeats 2 --threads "$(nproc)" --backends "${backends[@]}")
fi

echo "== 1. one-epoch evaluation: paper-style trainer vs our runner ($device)"
python -m bench.eval_speed --device "$device" "${speed[@]}" --json "$out/eval_speed_$device.json"
echo "== 2. sandbox overhead ($device)"
python -m bench.sandbox_overhead "${overhead[@]}" --json "$out/sandbox_overhead_$device.json"
if [[ $device == cuda ]]; then
    echo "== 3. shared GPU: memory cap and GPU OOM"
    python -m bench.gpu_checks --json "$out/gpu_checks.json"
fi
echo "gpu.sh: figures in $out"
