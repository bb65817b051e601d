"""What the sandbox costs: the same one-epoch evaluation bare and through each backend.

    python -m bench.sandbox_overhead [--dataset synthetic-cifar] [--backends docker-warm docker
        process] [--repeats 2] [--train-limit N] [--json PATH]

bare        sandbox/inside/runner.py's run() called in this process, which has already imported torch
            and run this very net once: no interpreter, no import, no container, no isolation,
            and its kernels already warm. The strict floor.
bare-process  the runner as a plain process of its own, no sandbox: interpreter, torch import
            and a fresh process's cold kernels, which any per-candidate isolation pays.
<backend>   Evaluator.evaluate() through that backend, exactly as a search calls it: job dir,
            out-dir tmpfs, sandbox start, runner, result files, scoring on the host.
overhead = backend wall - bare wall (seconds, and % of bare); ratio = backend / bare;
vs fresh process = backend wall - bare-process wall.
The warm backend's first job also starts its container (its wall time is `first_job_s`);
the figures are its steady state, which is what every later candidate of a search pays.
Runs alternate (bare, then each backend, then again in the opposite order) so that a machine
warming up or getting busy favours none.

Measured on 2026-11-30 (2-core Xeon with AMX, no GPU; synthetic-cifar, 45k train, reference net,
bf16, 2 repeats): bare 23.13 s; docker-warm 24.33 s (+1.20 s, 5.2%); a container per candidate
27.05 s (+3.91 s, 16.9%); process sandbox 26.10 s (+2.97 s, 12.8%). On mnist5k (1,024 train):
bare 0.32 s, warm +0.20 s, a container per candidate +3.0 s, process +4.3 s.
Measured on 2026-12-01 (a faster 2-core machine, same setup, 3 repeats, quiet): bare 10.76 s;
bare-process 13.45 s; docker-warm 12.12 s (+1.36 s, 12.6%; -1.33 s, -9.9% vs bare-process);
a container per candidate 14.52 s (+3.75 s; +1.07 s, +8.0% vs bare-process); process sandbox
13.77 s (+3.00 s; +0.32 s). Outside training the warm worker adds 0.10 s (wall - train: 0.75 s
against bare's 0.65 s); the rest is training in a fresh process (bare-process trains 0.83 s
slower than bare too: kernels and allocator start cold). An earlier run: warm +1.14 s (10.9%).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.synthetic import NAME as SYNTHETIC
from bench.synthetic import synthetic_cifar
from sandbox.inside import runner
from sandbox.backends.base import Backend, Limits
from sandbox.backends.select import make_backend
from sandbox.data import PreparedDataset, default_data_dir, prepare
from sandbox.evaluate import Evaluator

REFERENCE_NET = Path(__file__).resolve().parents[1] / "tools" / "reference_net.py"
FRESH = "bare-process"  # the runner as a plain subprocess, no sandbox
LIMITS = Limits(timeout_s=1800, memory_mb=8192, pids=256, scratch_mb=256)


def make_sandbox(kind: str, image: str) -> Backend:
    if kind == "docker-warm":
        return make_backend("docker", image, announce=False, warm=True)
    return make_backend(kind, image, announce=False)


@contextlib.contextmanager
def job_files(evaluator: Evaluator, code: str) -> Iterator[tuple[Path, Path]]:
    """A job dir (candidate + the evaluator's runner config) and an empty out dir."""
    with tempfile.TemporaryDirectory(prefix="overhead.") as tmp:
        job, out = Path(tmp, "job"), Path(tmp, "out")
        job.mkdir()
        out.mkdir()
        (job / "candidate.py").write_text(code)
        (job / "config.json").write_text(json.dumps(evaluator.runner_config()))
        yield job, out


def score(
    evaluator: Evaluator, predictions: list[int], wall: float, train: float
) -> dict[str, Any]:
    labels = evaluator.dataset.val_labels()
    accuracy = float((torch.tensor(predictions) == labels).double().mean())
    return {"wall_s": wall, "train_s": train, "accuracy": accuracy}


def run_bare(evaluator: Evaluator, code: str) -> dict[str, Any]:
    """The runner's own work, in this process: what no sandbox can make cheaper."""
    with job_files(evaluator, code) as (job, out):
        report: dict[str, Any] = {"timings": {}}
        t = time.perf_counter()
        predictions = runner.run(str(job), str(evaluator.dataset.public_dir), str(out), report)
        wall = time.perf_counter() - t
    assert predictions is not None  # a training run (only a dry run returns none)
    return score(evaluator, predictions, wall, report["timings"]["train_s"])


def run_fresh(evaluator: Evaluator, code: str) -> dict[str, Any]:
    """The runner as a plain process of its own, no sandbox: the floor for any evaluation that
    runs each candidate in a fresh process (interpreter, torch import and cold kernels)."""
    with job_files(evaluator, code) as (job, out):
        data = str(evaluator.dataset.public_dir)
        command = [sys.executable, runner.__file__, "--job", str(job), "--data", data]
        t = time.perf_counter()
        subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
        wall = time.perf_counter() - t
        report = json.loads((out / "report.json").read_text())
        predictions = json.loads((out / "predictions.json").read_text())
    return score(evaluator, predictions, wall, report["timings"]["train_s"])


def run_sandboxed(evaluator: Evaluator, code: str) -> dict[str, Any]:
    result = evaluator.evaluate(code)
    if result["status"] != "ok":
        raise RuntimeError(f"{evaluator.backend.name}: {result['kind']}: {result['message']}")
    return {
        "wall_s": result["wall_seconds"],
        "train_s": result["train_seconds"],
        "accuracy": result["val_accuracy"],
    }


def measure(ds: PreparedDataset, args: argparse.Namespace) -> dict[str, Any]:
    code = REFERENCE_NET.read_text()
    config = {"threads": args.threads, "train_limit": args.train_limit, "seed": 0}
    evaluators = {"bare": Evaluator(ds, make_sandbox("process", args.image), config, LIMITS)}
    first_job: dict[str, float] = {}
    for kind in args.backends:
        evaluators[kind] = Evaluator(ds, make_sandbox(kind, args.image), config, LIMITS)
        if kind == "docker-warm":  # start its container now; its first job is not steady state
            t = time.perf_counter()
            run_sandboxed(evaluators[kind], code)
            first_job[kind] = time.perf_counter() - t
    run_bare(evaluators["bare"], code)  # this process's one-time costs (dynamo's import) first
    methods = ["bare", FRESH, *args.backends]
    floors = {"bare": run_bare, FRESH: run_fresh}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for repeat in range(args.repeats):
        for method in methods if repeat % 2 == 0 else methods[::-1]:
            run = floors.get(method, run_sandboxed)
            figures = run(evaluators.get(method, evaluators["bare"]), code)
            runs[method].append(figures)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
            print(f"  repeat {repeat} {method}: {shown}", file=sys.stderr, flush=True)
    for evaluator in evaluators.values():
        close = getattr(evaluator.backend, "close", None)
        if close:
            close()
    mean = {m: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for m, rs in runs.items()}
    bare, fresh = mean["bare"]["wall_s"], mean[FRESH]["wall_s"]
    compared = {
        kind: {
            "wall_s": mean[kind]["wall_s"],
            "overhead_s": mean[kind]["wall_s"] - bare,
            "overhead_pct": 100 * (mean[kind]["wall_s"] - bare) / bare,
            "ratio": mean[kind]["wall_s"] / bare,
            "vs_fresh_process_s": mean[kind]["wall_s"] - fresh,
            "vs_fresh_process_pct": 100 * (mean[kind]["wall_s"] - fresh) / fresh,
            "first_job_s": first_job.get(kind),  # its container start included
        }
        for kind in [FRESH, *args.backends]
    }
    return {"runs": runs, "mean": mean, "bare_wall_s": bare, "backends": compared}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_overhead", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", default=SYNTHETIC, help=f"{SYNTHETIC} or a prepared dataset")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: sandbox.data's")
    parser.add_argument(
        "--backends", nargs="+", default=["docker-warm", "docker", "process"], metavar="KIND"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=None, help="first N training images")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, everywhere")
    parser.add_argument("--image", default="nasloop-sandbox:latest")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data_dir = args.data_dir or default_data_dir()
    ds = synthetic_cifar(data_dir) if args.dataset == SYNTHETIC else prepare(args.dataset, data_dir)
    n_train = min(ds.n_train, args.train_limit or ds.n_train)
    print(f"{ds.name}: train {n_train}, val {ds.n_val}; reference net; {args.repeats} repeats")
    result = measure(ds, args)
    print(
        f"{'method':>13} | {'wall s':>7} | {'overhead s':>10} | {'overhead %':>10} | {'ratio':>5}"
        f" | {'vs fresh process s':>18} {'%':>6}"
    )
    print(f"{'bare':>13} | {result['bare_wall_s']:>7.2f} |")
    for kind, row in result["backends"].items():
        first = row["first_job_s"]
        start = f" (its first job, container start included: {first:.2f} s)" if first else ""
        print(
            f"{kind:>13} | {row['wall_s']:>7.2f} | {row['overhead_s']:>10.2f} |"
            f" {row['overhead_pct']:>9.1f}% | {row['ratio']:.3f}"
            f" | {row['vs_fresh_process_s']:>18.2f} {row['vs_fresh_process_pct']:>5.1f}%{start}"
        )
    print(
        "overhead: against `bare`, run() in this process with its kernels already warm for this"
        f" net; vs fresh process: against `{FRESH}`, the runner as a plain process of its own"
    )
    if args.json:
        payload = {
            "benchmark": "sandbox_overhead",
            "dataset": ds.name,
            "n_train": n_train,
            "n_val": ds.n_val,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            **result,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
