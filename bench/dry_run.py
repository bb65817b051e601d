"""What the check's sandbox stage costs: Evaluator.dry_run, with and without a shape error.

    python -m bench.dry_run [--dataset mnist5k] [--backends docker-warm docker] [--repeats 20]
        [--cold-repeats N] [--json PATH]

Each backend dry-runs two candidates `--repeats` times, alternating: `ok`, the reference net
(`tools.reference_net`), and `shape`, the same net with its head's in_features wrong (it fails at
the last layer, after the whole conv stack ran, and comes back with a shape trace). The figure is
Evaluator.dry_run's wall time as a search pays it: job dir, sandbox, runner (import, build, one
forward pass of two images), report read on the host. The warm backend's first job, which starts
its container, is timed apart (`first_job_s`) and not in the median. Backends that start a fresh
interpreter per candidate (docker, process) take `--cold-repeats` runs (default: `--repeats`).
A dry run that does not come back with the expected kind (a timeout on a crowded machine) is
counted in `unexpected`, not timed. The JSON is rewritten after each backend.

Target (issue 14): under 1 s per dry run through the warm worker on a 2-core CPU.
Measured on 2026-12-02 (2-core Xeon, no GPU, mnist5k; the machine shared with other jobs, load
average 3-24): warm worker, median of 20, 0.26 s (ok) / 0.31 s (shape) at load ~3-6, 0.88 s /
0.94 s at load ~12, 1.49 s / 1.39 s at load ~16, 3.21 s / 3.60 s at load ~22, 0.10-0.14 s of CPU
per dry run; a container per candidate, median of 10 (`--cold-repeats 10`), 2.04 s / 2.08 s at
load ~3-5 and 24.8 s / 29.8 s at load ~16. Details in `sandbox.dry_run`'s docstring.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.backends.base import Backend, Limits
from sandbox.backends.select import make_backend
from sandbox.data import default_data_dir, prepare
from sandbox.evaluate import Evaluator

REFERENCE_NET = Path(__file__).resolve().parents[1] / "tools" / "reference_net.py"
GOOD_HEAD = "nn.Linear(128, num_classes)"
LIMITS = Limits(timeout_s=120, memory_mb=2048, pids=128, scratch_mb=64)


def candidates() -> dict[str, str]:
    code = REFERENCE_NET.read_text()
    if GOOD_HEAD not in code:
        raise SystemExit(f"{REFERENCE_NET} no longer has `{GOOD_HEAD}`: update bench/dry_run.py")
    return {"ok": code, "shape": code.replace(GOOD_HEAD, "nn.Linear(128 * 4 * 4, num_classes)")}


def make_sandbox(kind: str, image: str) -> Backend:
    if kind == "docker-warm":
        return make_backend("docker", image, announce=False, warm=True)
    return make_backend(kind, image, announce=False)


def time_one(evaluator: Evaluator, code: str, expect: str) -> tuple[float, float | None]:
    """Wall seconds of one dry run, and the CPU seconds it cost (warm worker only, else None)."""
    cpu_before = cpu_seconds(evaluator.backend)
    started = time.perf_counter()
    result = evaluator.dry_run(code)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(evaluator.backend)
    if result["kind"] != expect:
        raise RuntimeError(f"expected {expect}, got {result['kind']}: {result['message']}")
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return seconds, cpu


def cpu_seconds(backend: Backend) -> float | None:
    """CPU time used so far by this process and the warm container (its cgroup's counter).

    On a shared machine wall time measures the queue as much as the work; CPU time does not: it
    is what a dry run costs a machine with nothing else to do (worker polling included).
    """
    pool = getattr(backend, "_pool", None)
    if pool is None:
        return None
    cid = pool.container.id
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),  # cgroup v1, ns
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),  # v2, usage_usec
    ):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        value = text.split()[1] if text.startswith("usage_usec") else text.split()[0]
        return int(value) * scale + time.process_time()
    return None


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_s": statistics.median(ordered),
        "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min_s": ordered[0],
        "max_s": ordered[-1],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    dataset = prepare(args.dataset, args.data_dir or default_data_dir())
    codes = candidates()
    result: dict[str, Any] = {"dataset": dataset.name, "backends": {}}
    for kind in args.backends:
        evaluator = Evaluator(dataset, make_sandbox(kind, args.image), {"threads": 1}, LIMITS)
        first = None
        if kind == "docker-warm":  # its container starts here: not what each candidate pays
            first = time_one(evaluator, codes["ok"], "ok")[0]
        repeats = args.repeats if kind == "docker-warm" else args.cold_repeats or args.repeats
        times: dict[str, list[float]] = {case: [] for case in codes}
        cpu: dict[str, list[float]] = {case: [] for case in codes}
        unexpected: list[str] = []
        for repeat in range(repeats):
            for case in codes if repeat % 2 == 0 else list(codes)[::-1]:
                try:
                    wall, cpu_s = time_one(evaluator, codes[case], case)
                except RuntimeError as exc:
                    unexpected.append(f"{case}: {exc}")
                    continue
                times[case].append(wall)
                if cpu_s is not None:
                    cpu[case].append(cpu_s)
            print(f"  {kind} repeat {repeat} done", file=sys.stderr, flush=True)
        close = getattr(evaluator.backend, "close", None)
        if close:
            close()
        result["backends"][kind] = {
            "repeats": repeats,
            "first_job_s": first,
            "unexpected": unexpected,
            **{case: {**summary(ts), "runs_s": ts} for case, ts in times.items() if ts},
            "cpu_median_s": {c: statistics.median(ts) for c, ts in cpu.items() if ts},
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dry_run", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", default="mnist5k", help="a prepared dataset's name")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: sandbox.data's")
    parser.add_argument("--backends", nargs="+", default=["docker-warm", "docker"], metavar="KIND")
    parser.add_argument("--repeats", type=int, default=20, help="dry runs per candidate")
    parser.add_argument("--cold-repeats", type=int, default=None, help="for docker and process")
    parser.add_argument("--image", default="nasloop-sandbox:latest")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    result = measure(args)
    print(f"{result['dataset']}: Evaluator.dry_run wall time (runs per cell: `repeats`)")
    header = f"{'backend':>12} | {'case':>5} | {'repeats':>7} | {'median s':>8} | {'p90 s':>6}"
    print(f"{header} | {'min s':>6} | max s")
    for kind, row in result["backends"].items():
        for case in ("ok", "shape"):
            cell = row.get(case)
            if cell is None:
                print(f"{kind:>12} | {case:>5} | no run came back as expected")
                continue
            print(
                f"{kind:>12} | {case:>5} | {len(cell['runs_s']):>7} | {cell['median_s']:>8.3f} |"
                f" {cell['p90_s']:>6.3f} | {cell['min_s']:>6.3f} | {cell['max_s']:.3f}"
            )
        for case, value in row["cpu_median_s"].items():
            print(f"{kind:>12} | {case:>5} | median CPU s (host + container): {value:.3f}")
        for line in row["unexpected"]:
            print(f"{kind:>12} | unexpected: {line[:200]}")
        if row["first_job_s"] is not None:
            print(f"{kind:>12} | first job (container start included): {row['first_job_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
