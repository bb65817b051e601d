"""What the sandbox costs: the same one-epoch evaluation bare and through each backend.

    python -m bench.sandbox_overhead [--dataset synthetic-cifar] [--backends docker-warm docker
        process] [--repeats 2] [--train-limit N] [--json PATH]

bare        sandbox/runner.py's run() called in this process, which has already imported torch:
            no interpreter, no import, no container, no isolation. The floor.
<backend>   Evaluator.evaluate() through that backend, exactly as a search calls it: job dir,
            out-dir tmpfs, sandbox start, runner, result files, scoring on the host.
overhead = backend wall - bare wall (seconds, and % of bare); ratio = backend / bare.
The warm backend's first job also starts its container (its wall time is `first_job_s`);
the figures are its steady state, which is what every later candidate of a search pays.
Runs alternate (bare, then each backend, then again in the opposite order) so that a machine
warming up or getting busy favours none.

Measured on 2026-11-30 (2-core Xeon with AMX, no GPU; synthetic-cifar, 45k train, reference net,
bf16, 2 repeats): bare 23.13 s; docker-warm 24.33 s (+1.20 s, 5.2%); a container per candidate
27.05 s (+3.91 s, 16.9%); process sandbox 26.10 s (+2.97 s, 12.8%). On mnist5k (1,024 train):
bare 0.32 s, warm +0.20 s, a container per candidate +3.0 s, process +4.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.synthetic import NAME as SYNTHETIC
from bench.synthetic import synthetic_cifar
from sandbox import runner
from sandbox.backends.base import Backend, Limits
from sandbox.backends.select import make_backend
from sandbox.data import PreparedDataset, default_data_dir, prepare
from sandbox.evaluate import Evaluator

REFERENCE_NET = Path(__file__).resolve().parents[1] / "tools" / "reference_net.py"
LIMITS = Limits(timeout_s=1800, memory_mb=8192, pids=256, scratch_mb=256)


def make_sandbox(kind: str, image: str) -> Backend:
    if kind == "docker-warm":
        return make_backend("docker", image, announce=False, warm=True)
    return make_backend(kind, image, announce=False)


def run_bare(evaluator: Evaluator, code: str) -> dict[str, Any]:
    """The runner's own work, in this process: what no sandbox can make cheaper."""
    with tempfile.TemporaryDirectory(prefix="overhead.") as tmp:
        job, out = Path(tmp, "job"), Path(tmp, "out")
        job.mkdir()
        out.mkdir()
        (job / "candidate.py").write_text(code)
        (job / "config.json").write_text(json.dumps(evaluator.runner_config()))
        report: dict[str, Any] = {"timings": {}}
        t = time.perf_counter()
        predictions = runner.run(str(job), str(evaluator.dataset.public_dir), str(out), report)
        wall = time.perf_counter() - t
    labels = evaluator.dataset.val_labels()
    accuracy = float((torch.tensor(predictions) == labels).double().mean())
    return {"wall_s": wall, "train_s": report["timings"]["train_s"], "accuracy": accuracy}


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
    methods = ["bare", *args.backends]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for repeat in range(args.repeats):
        for method in methods if repeat % 2 == 0 else methods[::-1]:
            run = run_bare if method == "bare" else run_sandboxed
            figures = run(evaluators[method], code)
            runs[method].append(figures)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
            print(f"  repeat {repeat} {method}: {shown}", file=sys.stderr, flush=True)
    for evaluator in evaluators.values():
        close = getattr(evaluator.backend, "close", None)
        if close:
            close()
    mean = {m: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for m, rs in runs.items()}
    bare = mean["bare"]["wall_s"]
    compared = {
        kind: {
            "wall_s": mean[kind]["wall_s"],
            "overhead_s": mean[kind]["wall_s"] - bare,
            "overhead_pct": 100 * (mean[kind]["wall_s"] - bare) / bare,
            "ratio": mean[kind]["wall_s"] / bare,
            "first_job_s": first_job.get(kind),  # its container start included
        }
        for kind in args.backends
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
    print(f"{'method':>12} | {'wall s':>7} | {'overhead s':>10} | {'overhead %':>10} | ratio")
    print(f"{'bare':>12} | {result['bare_wall_s']:>7.2f} |")
    for kind, row in result["backends"].items():
        first = row["first_job_s"]
        start = f" (its first job, container start included: {first:.2f} s)" if first else ""
        print(
            f"{kind:>12} | {row['wall_s']:>7.2f} | {row['overhead_s']:>10.2f} |"
            f" {row['overhead_pct']:>9.1f}% | {row['ratio']:.3f}{start}"
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
