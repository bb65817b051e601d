"""The final test: the search's best candidates, scored once on the held-out test split.

    python -m agent final_test RUN_ID [--top-k K] [--epochs E] [--runs-dir DIR]

The search selects on the validation split only. Once it is over, the top k candidates by
validation accuracy (distinct code only) are trained again on the training split, for
`final_epochs` epochs, and scored on the test split through a separate prepared view whose
"validation" images are the test images (`held_out_view`): test images enter a sandbox in
this step and in no other, and their labels never leave the host. The results go to the archive's
own `final_test` table, apart from the search's rows; the trained weights, when kept, to
`<run dir>/final/weights/<code hash>.pt`. Run again with the same candidates and epochs, it
returns the stored results instead of training again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from agent.archive.candidates import RunArchive
from agent.archive.paths import WEIGHTS_DIR, load_final_test, reopen, run_path, store_final_test
from agent.results.cli import run_command, run_parser
from agent.settings import Settings

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def top_candidates(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The k best successful rows by validation accuracy, earliest first on ties, one per code."""
    ok = [r for r in rows if r["status"] == "ok" and r["val_accuracy"] is not None]
    ok.sort(key=lambda r: (-r["val_accuracy"], r["iteration"]))
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in ok:
        if row["code_hash"] in seen or not row["code_path"]:
            continue
        seen.add(row["code_hash"])
        picked.append(row)
    return picked[:k]


def run_final_test(settings: Settings, run_id: str, log: Log = _stderr) -> list[dict[str, Any]]:
    """Train and score the run's top `final_top_k` candidates on the test split; store and return
    the results (best by validation first)."""
    from sandbox.evaluate import held_out_evaluator
    from tools.train_candidate import evaluator_for

    run_dir = run_path(settings.runs_dir, run_id)
    picks = top_candidates(RunArchive(run_dir).rows(), settings.final_top_k)
    stored = load_final_test(run_dir)
    wanted = [(r["code_hash"], settings.final_epochs) for r in picks]
    if wanted and wanted == [(r["code_hash"], r["epochs"]) for r in stored]:
        return stored
    if not picks:
        store_final_test(run_dir, [])
        return []
    keep = run_dir / WEIGHTS_DIR if settings.final_weights else None
    evaluator = held_out_evaluator(evaluator_for(settings), settings, settings.final_epochs, keep)
    n_test = evaluator.dataset.n_val  # the view's "validation" split is the test split
    results = []
    for rank, row in enumerate(picks, 1):
        code = (run_dir / row["code_path"]).read_text(encoding="utf-8")
        result = dict(evaluator.evaluate(code))
        test_acc = result["val_accuracy"] if result["status"] == "ok" else None
        weights = keep / f"{result['code_hash']}.pt" if keep is not None else None
        results.append(
            {
                "rank": rank,
                "iteration": row["iteration"],
                "code_hash": row["code_hash"],
                "val_accuracy": row["val_accuracy"],
                "test_accuracy": test_acc,
                "epochs": settings.final_epochs,
                "n_test": n_test,
                "status": result["status"],
                "kind": result["kind"],
                "message": result["message"],
                "params": result.get("params"),
                "flops": result.get("flops"),
                "train_seconds": result.get("train_seconds"),
                "latency_ms": result.get("latency_ms"),
                "peak_memory_mb": result.get("peak_memory_mb"),
                "weights_path": str(weights.relative_to(run_dir))
                if weights is not None and weights.is_file()
                else None,
                "result": json.dumps(result),
                "created": time.time(),
            }
        )
        shown = f"test accuracy {test_acc:.4f}" if test_acc is not None else result["message"]
        log(
            f"final test [{rank}/{len(picks)}] iteration {row['iteration']}: {shown} "
            f"(validation {row['val_accuracy']:.4f}, {settings.final_epochs} epoch(s))"
        )
    store_final_test(run_dir, results)
    return results


def main(argv: list[str] | None = None) -> int:
    from sandbox.faults import InfrastructureFault  # BackendUnavailable is one

    parser = run_parser("python -m agent final_test", __doc__)
    parser.add_argument("--top-k", type=int, help="default: the run's final_top_k")
    parser.add_argument("--epochs", type=int, help="default: the run's final_epochs")
    return run_command(parser, argv, _final_test, errors=(InfrastructureFault,))


def _final_test(args: argparse.Namespace) -> int:
    from agent.settings import load_settings

    runs_dir = args.runs_dir or load_settings().runs_dir
    overrides = {"final_top_k": args.top_k, "final_epochs": args.epochs, "runs_dir": runs_dir}
    settings = reopen(run_path(runs_dir, args.run_id), **overrides)
    results = run_final_test(settings, args.run_id)
    print(json.dumps([{k: v for k, v in r.items() if k != "result"} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
