"""On a CUDA machine: a candidate's GPU memory is capped, and a GPU OOM is the candidate's `oom`.

    python -m bench.gpu_checks [--sandbox auto] [--fraction 0.25] [--json PATH]

Three sandboxed evaluations of one small net that, before training, holds a block of GPU memory
of a given share of the card:
  capped   share 0.40 with NASLOOP_GPU_MEMORY_FRACTION=0.25   expect `oom` (the cap stops it)
  uncapped share 0.40 with no cap                            expect `ok`  (so the cap did it)
  too big  share 2.00 with no cap                            expect `oom` (a real GPU OOM)
An LLM server on the same card keeps what the cap leaves it. Exit 1 if any expectation fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from sandbox.evaluate import evaluator_from_settings
from sandbox.settings import load_settings

HOG = """
import torch
import torch.nn as nn

SHARE = {share}


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(1, num_classes)
        self.hog = None

    def forward(self, x):
        if self.hog is None and x.is_cuda:  # once, on the training device
            total = torch.cuda.get_device_properties(x.device).total_memory
            self.hog = torch.empty(int(SHARE * total), dtype=torch.uint8, device=x.device)
        return self.fc(x.flatten(1).mean(1, keepdim=True))
"""

CASES = [
    ("capped", 0.40, True, "oom"),
    ("uncapped", 0.40, False, "ok"),
    ("too big", 2.0, False, "oom"),
]


def run_case(share: float, capped: bool, args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(
        dataset=args.dataset,
        data_dir=args.data_dir,
        runs_dir=args.runs_dir,
        sandbox=args.sandbox,
        train_limit=1024,
        gpus="auto",
        gpu_memory_fraction=args.fraction if capped else None,
    )
    evaluator = evaluator_from_settings(settings, announce=False)
    evaluator.cache = None
    result = dict(evaluator.evaluate(HOG.format(share=share)))
    close = getattr(evaluator.backend, "close", None)
    if close:
        close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_checks", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sandbox", default="auto", choices=("auto", "docker", "process"))
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--data-dir", type=Path, default=Path("~/.cache/nasloop/data").expanduser())
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/nasloop-gpu-checks"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_checks: no CUDA device here; nothing to check", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for name, share, capped, expected in CASES:
        result = run_case(share, capped, args)
        passed = result["kind"] == expected
        failed += not passed
        rows.append(
            {
                "case": name,
                "share": share,
                "capped": capped,
                "expected": expected,
                "kind": result["kind"],
                "message": result["message"],
                "passed": passed,
            }
        )
        print(
            f"{name:>9}: share {share:.2f} cap {args.fraction if capped else '-'} ->"
            f" {result['kind']} ({result['message'][:100]}) {'PASS' if passed else 'FAIL'}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": "gpu_checks",
            "fraction": args.fraction,
            "cases": rows,
            "device": torch.cuda.get_device_name(0),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
