"""What keeping the warm worker provably clean costs, and how often a container is retired.

    python -m bench.warm_clean [--jobs 20] [--json PATH]

clear       per job, inside the worker: SIGKILL to every other process of the container and
            reaping them, copying out the result files, a helper with the job's uid deleting
            what the job left (files, SysV IPC). What any clean hand-over needs.
prove       per job: checking that the container is back to its state after warm-up (no other
            process, every writable place empty and at its baseline usage, no IPC object,
            memory back to baseline). This is the check itself.
tiny job    Evaluator.evaluate() of a tiny net (one linear layer) on a tiny training limit
            (--train-limit images, one batch): the cheapest job a search sends, an equivalent of
            the dry-run stage, timed with the proof on and off (`prove_clean=False`: the worker
            still clears, only skips the check). Runs alternate on/off in one process.
corpus      the hostile candidates (tests/candidates) through one warm pool, each followed by an
            honest one: containers started, and retired because a check failed.

Medians over --jobs jobs.

Measured on 2026-12-02 (2-core CPU shared with other jobs, load average 13-20; mnist5k, 20 jobs
per arm): clear 135.6 ms per job (mostly forking and ending the uid helper from a process that
has imported torch), prove 0.6 ms per job; tiny job 0.729 s with the proof and 0.793 s without
(the difference is the busy machine's noise: the proof itself is under a millisecond). Corpus:
22 jobs (11 hostile, each followed by an honest one), 1 container started, 0 retired: every
attack was cleared, and every honest job after one scored `ok`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.backends.base import Limits
from sandbox.backends.warm import WarmDockerBackend
from sandbox.data import default_data_dir, prepare
from sandbox.evaluate import Evaluator

CANDIDATES = Path(__file__).resolve().parents[1] / "tests" / "candidates"
TINY = """
import torch.nn as nn

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""
LIMITS = Limits(timeout_s=60, memory_mb=1024, pids=64, scratch_mb=64)
# Hostile programs that run to an end within the limits above (the slow ones: see test_hostile).
CORPUS = (
    "warm_precreate_names",
    "warm_fill_tmpfs",
    "warm_outlive_reaper",
    "warm_sysv_ipc",
    "orphan_subprocess",
    "double_fork_daemon",
    "fill_out_dir",
    "fork_bomb",
    "stray_threads",
    "write_outside",
    "memory_hog",
)


def tiny_jobs(data: Any, image: str, jobs: int, train_limit: int) -> dict[str, Any]:
    config = {"batch_size": 32, "lr": 0.01, "threads": 2, "train_limit": train_limit, "seed": 0}
    pools = {on: WarmDockerBackend(image=image, prove_clean=on) for on in (True, False)}
    try:
        evaluators = {
            on: Evaluator(data, b, config, LIMITS, precheck=False) for on, b in pools.items()
        }
        for evaluator in evaluators.values():  # container start and first job: not steady state
            evaluator.evaluate(TINY)
        for backend in pools.values():
            backend.clear_seconds.clear()
            backend.prove_seconds.clear()
        walls: dict[bool, list[float]] = {True: [], False: []}
        for i in range(jobs):
            for on in (True, False) if i % 2 == 0 else (False, True):
                result = evaluators[on].evaluate(TINY)
                assert result["status"] == "ok", result
                walls[on].append(result["wall_seconds"])
        checked = pools[True]
        return {
            "jobs": jobs,
            "clear_s": statistics.median(checked.clear_seconds),
            "prove_s": statistics.median(checked.prove_seconds),
            "prove_s_max": max(checked.prove_seconds),
            "tiny_job_with_check_s": statistics.median(walls[True]),
            "tiny_job_without_check_s": statistics.median(walls[False]),
            "retired": checked.retired,
        }
    finally:
        for backend in pools.values():
            backend.close()


def corpus(data: Any, image: str) -> dict[str, Any]:
    config = {"batch_size": 32, "lr": 0.01, "threads": 2, "train_limit": 256, "seed": 0}
    backend = WarmDockerBackend(image=image)
    evaluator = Evaluator(data, backend, config, LIMITS, precheck=False)
    outcomes = {}
    try:
        for name in CORPUS:
            hostile = evaluator.evaluate((CANDIDATES / f"{name}.py").read_text())
            honest = evaluator.evaluate(TINY)
            outcomes[name] = {"hostile": hostile.get("kind"), "next_honest": honest.get("kind")}
        return {
            "jobs": 2 * len(CORPUS),
            "started": backend.started,
            "retired": backend.retired,
            "outcomes": outcomes,
        }
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_clean", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--jobs", type=int, default=20, help="tiny jobs per arm (proof on/off)")
    parser.add_argument("--train-limit", type=int, default=32, help="training images per job")
    parser.add_argument("--image", default="nasloop-sandbox:latest")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    data = prepare("mnist5k", default_data_dir())
    started = time.perf_counter()
    tiny = tiny_jobs(data, args.image, args.jobs, args.train_limit)
    hostile = corpus(data, args.image)
    print(f"mnist5k, tiny net, {args.train_limit} training images, {args.jobs} jobs per arm")
    print(f"{'figure':>34} | {'median':>9}")
    print(f"{'clear (kill, copy out, delete)':>34} | {1000 * tiny['clear_s']:>6.1f} ms")
    print(f"{'prove (the cleanliness check)':>34} | {1000 * tiny['prove_s']:>6.1f} ms")
    print(f"{'tiny job, check on':>34} | {tiny['tiny_job_with_check_s']:>7.3f} s")
    print(f"{'tiny job, check off':>34} | {tiny['tiny_job_without_check_s']:>7.3f} s")
    print(
        f"corpus: {hostile['jobs']} jobs ({len(CORPUS)} hostile, each followed by an honest one):"
        f" {hostile['started']} container(s) started, {hostile['retired']} retired"
    )
    for name, row in hostile["outcomes"].items():
        print(f"  {name:>22}: {row['hostile']:>8}, then the honest job: {row['next_honest']}")
    if args.json:
        payload = {
            "benchmark": "warm_clean",
            "cpu_count": os.cpu_count(),
            "seconds": time.perf_counter() - started,
            "tiny": tiny,
            "corpus": hostile,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
