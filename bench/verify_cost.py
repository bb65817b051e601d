"""What the verified measurement costs per candidate, on each backend (issue 18's figure).

    python -m bench.verify_cost [--dataset mnist5k] [--backends docker-warm docker process]
        [--repeats 2] [--json PATH]

With a hardware limit active, a candidate that claims to fit is measured again outside its own
process (verified metrics): its runner exports the trained net (`torch.export`), then a fresh
sandbox in which no candidate code runs (the verifier) reloads that program, predicts the
validation set and measures parameters, FLOPs and latency; peak memory is read by the host from
the job's cgroup, which costs next to nothing. Each candidate is evaluated twice in a row, as a
search calls it: without limits, then with all four limits on and generous enough that every
candidate passes (the order alternates between repeats). Per candidate:

verifier s  the fresh measuring job alone, as the result reports it (`verify_seconds`)
extra s     what the limits add: the evaluation's time outside training with limits minus the
            same without (wall - train, each), so the export, the verifier job and the host's
            reading of its output. Training itself is left out of both sides: on a shared
            machine its time varies by more than the whole measurement costs.
plain s, verified s   the evaluations' whole wall times, without and with limits
Rows give mean and sample standard deviation over candidates x repeats. The warm worker runs
only our runner, so its verifier job gets a container of its own (`fresh_job_backend`).

Measured on 2026-12-02 (2-core dev box shared with three other jobs, CPU, mnist5k: 3,600 train,
400 val; 3 candidates x 2 repeats), mean ± sd in seconds:
    backend      plain          verified       extra          verifier
    docker-warm  2.90 ± 4.44    7.41 ± 4.13    3.47 ± 0.73    2.95 ± 0.62
    docker       3.50 ± 2.20    7.68 ± 3.42    3.37 ± 1.15    2.59 ± 0.53
    process      4.32 ± 3.46    5.81 ± 1.33    2.70 ± 0.64    2.50 ± 0.40
The verifier job is most of it: a fresh sandbox, an interpreter and torch's import, before the
few hundred milliseconds of reloading, predicting and measuring. On the warm worker, whose plain
evaluation of a small net takes well under a second here, it multiplies a candidate's cost.
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

import torch

from sandbox.backends.base import Backend, Limits
from sandbox.data import default_data_dir, prepare
from sandbox.evaluate import Evaluator
from sandbox.hardware import HardwareLimits

LIMITS = Limits(timeout_s=600, memory_mb=4096, pids=256, scratch_mb=256)
# Every limit on, none binding: each candidate passes, so each is measured again.
GENEROUS = HardwareLimits(
    max_params=10**9, max_flops=10**12, max_peak_memory_mb=10**6, max_latency_ms=10**6
)

# Small nets for 1x28x28 images, of different shapes (an MLP, two CNNs, one with batch norm).
CANDIDATES = {
    "mlp": """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                                  nn.Linear(256, num_classes))

    def forward(self, x):
        return self.body(x)
""",
    "cnn2": """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
        )
        self.head = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))
""",
    "cnn3-bn": """
import torch
from torch import nn

def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(block(1, 32), block(32, 64), block(64, 128))  # (B, 128, 3, 3)
        self.head = nn.Linear(128 * 3 * 3, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))
""",
}


def make(kind: str, image: str) -> Backend:
    from sandbox.backends.docker import DockerBackend
    from sandbox.backends.process import ProcessBackend
    from sandbox.backends.warm import WarmDockerBackend

    if kind == "docker-warm":
        return WarmDockerBackend(image=image)
    if kind == "docker":
        return DockerBackend(image=image)
    return ProcessBackend()


def evaluate(evaluator: Evaluator, code: str) -> dict[str, Any]:
    result = dict(evaluator.evaluate(code))
    if result["kind"] != "ok":
        raise RuntimeError(f"{evaluator.backend.name}: {result['kind']}: {result['message']}")
    return result


def measure(kind: str, dataset: Any, args: argparse.Namespace) -> dict[str, Any]:
    backend = make(kind, args.image)
    config = {"threads": args.threads, "train_limit": args.train_limit, "seed": 0}
    # the forging twin reaches for os: the static policy is off, the sandbox is what is measured
    plain = Evaluator(dataset, backend, dict(config), LIMITS, precheck=False)
    verified = Evaluator(dataset, backend, dict(config), LIMITS, hardware=GENEROUS, precheck=False)
    runs: list[dict[str, Any]] = []
    try:
        evaluate(plain, CANDIDATES["mlp"])  # a warm worker's container start is not the figure
        for repeat in range(args.repeats):
            for name, code in CANDIDATES.items():
                pair = (plain, verified) if repeat % 2 == 0 else (verified, plain)
                results = {evaluator is verified: evaluate(evaluator, code) for evaluator in pair}
                walls = {k: r["wall_seconds"] for k, r in results.items()}
                outside = {k: walls[k] - r["train_seconds"] for k, r in results.items()}
                run = {
                    "candidate": name,
                    "plain_s": walls[False],
                    "verified_s": walls[True],
                    "extra_s": outside[True] - outside[False],
                    "verifier_s": results[True]["verify_seconds"],
                    "measured_by": results[True]["measured_by"],
                }
                runs.append(run)
                print(
                    f"  {kind} repeat {repeat} {name}: plain {run['plain_s']:.2f} s, verified "
                    f"{run['verified_s']:.2f} s, verifier {run['verifier_s']:.2f} s, "
                    f"by {sorted(set(run['measured_by'].values()))}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()

    def spread(key: str) -> dict[str, float]:
        values = [r[key] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "sd": sd}

    sources = sorted({f"{k}={v}" for r in runs for k, v in r["measured_by"].items()})
    return {
        "runs": runs,
        "plain_s": spread("plain_s"),
        "verified_s": spread("verified_s"),
        "extra_s": spread("extra_s"),
        "verifier_s": spread("verifier_s"),
        "measured_by": sources,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_cost", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", default="mnist5k", help="a prepared dataset's name")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: sandbox.data's")
    parser.add_argument(
        "--backends", nargs="+", default=["docker-warm", "docker", "process"], metavar="KIND"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=None, help="first N training images")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the sandbox")
    parser.add_argument("--image", default="nasloop-sandbox:latest")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    dataset = prepare(args.dataset, args.data_dir or default_data_dir())
    n_train = min(dataset.n_train, args.train_limit or dataset.n_train)
    print(
        f"{dataset.name}: train {n_train}, val {dataset.n_val}; {len(CANDIDATES)} candidates x "
        f"{args.repeats} repeats per backend"
    )
    started = time.perf_counter()
    results = {kind: measure(kind, dataset, args) for kind in args.backends}
    print(
        f"{'backend':<12} | {'plain s':>12} | {'verified s':>12} | {'extra s':>12} | "
        f"{'verifier s':>12} | n"
    )
    for kind, row in results.items():
        cells = " | ".join(
            f"{row[key]['mean']:>6.2f} ± {row[key]['sd']:<3.2f}"
            for key in ("plain_s", "verified_s", "extra_s", "verifier_s")
        )
        print(f"{kind:<12} | {cells} | {len(row['runs'])}")
    for kind, row in results.items():
        print(f"{kind}: figures measured by {', '.join(row['measured_by'])}")
    total_s = time.perf_counter() - started
    print(f"(mean ± sample sd per candidate; whole benchmark {total_s:.0f} s)")
    if args.json:
        payload = {
            "benchmark": "verify_cost",
            "dataset": dataset.name,
            "n_train": n_train,
            "n_val": dataset.n_val,
            "candidates": list(CANDIDATES),
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "backends": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
