"""What the sandbox self-test costs a run, on each backend (issue 17's figure).

    python -m bench.selftest_cost [--dataset mnist5k] [--repeats 2] [--json out.json]

The search runs `sandbox.selftest.self_test` once when it starts and once per resume. For each
backend (the warm Docker worker, a container per candidate, the process sandbox) this builds a
fresh backend, as a new run does, and times the first self-test (what a run pays; for the warm
worker it includes starting the container, which the first candidate then reuses) and the
repeats after it (the self-test's own work on a backend that is up).

Measured on 2026-12-02 (2-core Xeon, no GPU, mnist5k, load average ~1, `--repeats 2`): the
first self-test of a run costs 2.86 s on the warm worker (its container's start, which the first
candidate then reuses), 2.82 s with a container per candidate and 2.18 s on the process sandbox;
once the backend is up a self-test costs 0.18 s on the warm worker, 2.54 s and 2.24 s on the
others (each starts a fresh interpreter that imports torch).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from sandbox.backends.base import Backend, Limits
from sandbox.data import default_data_dir, prepare
from sandbox.evaluate import Evaluator
from sandbox.selftest import self_test

BACKENDS = ("docker-warm", "docker", "process")
CONFIG = {"batch_size": 128, "threads": 2}


def make(kind: str) -> Backend:
    from sandbox.backends.docker import DockerBackend
    from sandbox.backends.process import ProcessBackend
    from sandbox.backends.warm import WarmDockerBackend

    if kind == "docker-warm":
        return WarmDockerBackend()
    if kind == "docker":
        return DockerBackend()
    return ProcessBackend()


def measure(kind: str, dataset: Any, repeats: int) -> dict[str, Any]:
    backend = make(kind)
    evaluator = Evaluator(dataset, backend, dict(CONFIG), Limits(timeout_s=300, memory_mb=4096))
    try:
        first = self_test(evaluator)
        again = [self_test(evaluator) for _ in range(repeats)]
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    return {"first_s": first, "again_s": again, "again_median_s": statistics.median(again)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    dataset = prepare(args.dataset, args.data_dir or default_data_dir())
    results = {kind: measure(kind, dataset, args.repeats) for kind in args.backends.split(",")}
    print(f"{'backend':<12} {'first (per run)':>16} {'again (median)':>15}")
    for kind, row in results.items():
        print(f"{kind:<12} {row['first_s']:>15.2f}s {row['again_median_s']:>14.2f}s")
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "backends": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
