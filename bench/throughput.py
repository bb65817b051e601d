"""Candidates per hour through the Ray executor, with 1 and with 2 workers, side by side.

    python -m bench.throughput [--workers 1 2] [--candidates 8] [--epochs 4] [--train-limit N]
        [--sandbox auto|docker|process] [--repeats 1] [--json PATH]

Each configuration starts a fresh local Ray cluster with that many CPUs (one worker slot each),
then evaluates the same CPU-bound candidates (one small CNN, each copy numbered so that no two share
a cache entry; one torch thread per candidate, NASLOOP_THREADS=1) through
`sandbox.ray_executor.RayExecutor`, exactly as the search's train step does with
`--executor ray`: precheck and cache here, each evaluation a Ray task running the sandbox on a
worker. As many evaluations are kept in flight as there are workers. A warm-up round (one
candidate per worker, not timed) pays the worker processes' start and the dataset load first.

Reported per configuration: wall seconds for the timed candidates, candidates per hour, and the
mean evaluation wall time. `ratio` = candidates per hour with the most workers / with the fewest,
each configuration at its best run: on a machine shared with other work, outside load only ever
slows a run down, so the best run is the cleanest measurement (`ratio_mean` uses the means).
The LLM is left out on purpose: this measures how evaluation scales, which is what Ray adds.
With `--repeats 2` configurations alternate (1, 2, 2, 1) so a machine getting busy favours none.

Measured (2026-11-30; 2 vCPUs, 24 GiB, no GPU, shared with other engineers' jobs; mnist5k, 4
epochs of 4,500 images, Docker with a container per candidate on the workers; `--candidates 8
--repeats 2`): 1 worker 459 and 399 candidates/hour, 2 workers 890 and 502 (the second while
another job loaded both cores: its training took 9.0 s instead of 4.9 s); ratio 1.94x (means
1.62x). An earlier run the same day, on a quiet machine for its first pair: 406 vs 792, 1.95x.
Each evaluation took 7.8-8.1 s, of which 4.6-4.9 s training: two workers on two cores do not slow
each other down, so the scaling is the machine's, as long as nothing else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandbox.evaluate import evaluator_from_settings
from sandbox.ray_executor import RayExecutor
from sandbox.settings import load_settings

NET = """import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.variant = {variant}  # distinct code (its own cache entry), the same cost
        self.conv1 = nn.Conv2d({channels}, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(64 * 16, num_classes)

    def forward(self, x):  # (B, C, H, W)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, H/2, W/2)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 64, 4, 4)
        return self.fc(x.flatten(1))
"""


def candidates(n: int, channels: int, first: int = 0) -> list[str]:
    """n distinct nets of exactly the same cost."""
    return [NET.format(channels=channels, variant=first + i) for i in range(n)]


def measure(workers: int, overrides: dict[str, Any], n: int) -> dict[str, Any]:
    import ray

    with tempfile.TemporaryDirectory(prefix="nasloop-throughput.") as runs:
        settings = load_settings(**overrides, runs_dir=runs)  # a fresh, empty result cache
        local = evaluator_from_settings(settings, announce=False)
        channels = local.dataset.input_shape[0]
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            object_store_memory=80 * 2**20,
            log_to_driver=False,
            logging_level="WARNING",
        )
        try:
            executor = RayExecutor(settings, local, retries=0)
            executor.check()
            with ThreadPoolExecutor(workers) as pool:
                started = time.perf_counter()
                warm = list(pool.map(executor.evaluate, candidates(workers, channels, 100)))
                warmup_s = time.perf_counter() - started
                started = time.perf_counter()
                results = list(pool.map(executor.evaluate, candidates(n, channels)))
                wall = time.perf_counter() - started
        finally:
            ray.shutdown()
    failed = [r for r in [*warm, *results] if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"a benchmark candidate failed: {failed[0]['message']}")
    pids = {r["ray"]["pid"] for r in results if "ray" in r}
    return {
        "workers": workers,
        "candidates": n,
        "wall_s": round(wall, 2),
        "per_hour": round(n / wall * 3600, 1),
        "mean_eval_s": round(statistics.mean(r["wall_seconds"] for r in results), 2),
        "mean_train_s": round(statistics.mean(r["train_seconds"] or 0 for r in results), 2),
        "warmup_s": round(warmup_s, 2),
        "worker_processes": len(pids),
        "backend": results[0]["backend"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--candidates", type=int, default=8, help="timed candidates per run")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per candidate")
    parser.add_argument("--train-limit", type=int, help="first N training images (default all)")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--sandbox", default="auto", choices=["auto", "docker", "process"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        "dataset": args.dataset,
        "train_limit": args.train_limit,
        "epochs": args.epochs,
        "sandbox": args.sandbox,
        "threads": 1,  # CPU-bound candidates: one core each
        "gpus": "none",
        "timeout_s": 900,
    }
    if data_dir := os.environ.get("NASLOOP_DATA_DIR"):
        overrides["data_dir"] = data_dir
    if "RAY_AUTH_MODE" not in os.environ:  # the throwaway clusters' own token: none in ~/.ray
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    order = [w for r in range(args.repeats) for w in (args.workers[:: -1 if r % 2 else 1])]
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    for workers in order:
        run = measure(workers, overrides, args.candidates)
        runs[workers].append(run)
        print(
            f"{workers} worker(s): {run['candidates']} candidates in {run['wall_s']:.1f} s = "
            f"{run['per_hour']:.0f}/hour (mean evaluation {run['mean_eval_s']:.1f} s, "
            f"{run['backend']})",
            file=sys.stderr,
            flush=True,
        )
    per_hour = {w: statistics.mean(r["per_hour"] for r in rs) for w, rs in runs.items()}
    best = {w: max(r["per_hour"] for r in rs) for w, rs in runs.items()}
    low, high = min(args.workers), max(args.workers)
    ratio = best[high] / best[low]
    summary = {
        "benchmark": "throughput",
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))},
        "settings": overrides,
        "runs": {str(w): rs for w, rs in runs.items()},
        "per_hour": {str(w): round(v, 1) for w, v in per_hour.items()},
        "per_hour_best": {str(w): round(v, 1) for w, v in best.items()},
        "ratio": round(ratio, 3),
        "ratio_mean": round(per_hour[high] / per_hour[low], 3),
    }
    print(
        "candidates/hour (best run): "
        + ", ".join(f"{w} worker(s) {v:.0f}" for w, v in best.items())
        + f"; ratio {high}:{low} = {ratio:.2f}x (means: {summary['ratio_mean']:.2f}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
