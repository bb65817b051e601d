"""A run's report: numbers computed from the archive, a markdown summary and PNG plots.

    python -m agent report RUN_ID [--runs-dir DIR] [--json]

Also written at the end of every `python -m agent.run`. Everything goes to
`<runs dir>/<run id>/report/`:

    report.md         the summary: search numbers (validation split), failures by kind, the top
                      candidates, the final test (test split) in a section of its own, the Pareto
                      front, LLM tokens and time
    summary.json      the same numbers, for scripts (`python -m agent ablate` reads it)
    accuracy.png      validation accuracy per iteration, the best-so-far curve, failures by kind
    success_rate.png  share of candidates that trained, cumulative and over the last 10
    pareto.png        accuracy vs. parameters (and vs. latency when measured), front and limits
    lineage.png       the candidates' family tree, best path highlighted, failures by kind
                      (`lineage_graph`); "why candidates failed" in report.md (`failure_analysis`)

Definitions (each one is recomputed from the archive by a unit test):
- success rate: candidates whose status is ok / all candidates (over_limit is not a success).
- first and best validation accuracy: of the first and of the best successful candidate.
- Spearman's rho: rank correlation of iteration and validation accuracy over successful candidates,
  ties given their average rank (the paper's measure of steady improvement); None below 3 points.
- time: `generator` sums the Generator's calls, `evaluation` the sandbox evaluations actually run
  (cache hits excluded), `elapsed` spans the first Generator call to the last archived candidate.
- Pareto front: candidates with a measured accuracy (ok or over_limit, one per code) that no
  other candidate beats on both accuracy and size (or latency).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.archive.lineage import read_parents
from agent.archive.paths import (
    ARCHIVE_FILE,
    EXPORT_DIR,
    REPORT_DIR,
    existing_run_dir,
    load_final_test,
    saved_settings,
)
from agent.results.cli import run_command, run_parser
from agent.results.failures import failure_analysis, failures_markdown
from agent.results.lineage_plot import lineage_graph, plot_lineage
from agent.results.numbers import TOP_K, archive_rows, summarise
from agent.results.plots import plot_accuracy, plot_pareto, plot_success_rate
from agent.results.show import attempt_rows


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _int(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(summary: dict[str, Any], exported: bool = False) -> str:
    s = summary
    limits = ", ".join(f"{k} {v:,}" for k, v in s["limits"].items()) or "none"
    rho = s["spearman_rho"]
    tokens, seconds = s["tokens"], s["seconds"]
    best_text = f"{_acc(s['best_val_accuracy'])}"
    if s["best_iteration"] is not None:
        best_text += f" (iteration {s['best_iteration']})"
    numbers = [
        ["candidates", str(s["iterations"])],
        ["trained (success rate)", f"{s['ok']} ({s['success_rate']:.1%})"],
        ["first → best validation accuracy", f"{_acc(s['first_val_accuracy'])} → {best_text}"],
        [
            "Spearman ρ, iteration vs. accuracy",  # noqa: RUF001
            f"{rho:.3f} (n = {s['spearman_n']})" if rho is not None else "-",
        ],
        ["cache hits (identical code, not retrained)", str(s["cached"])],
        [
            "LLM tokens",
            f"{tokens['total']:,} (Generator {tokens['generator']:,}, "
            f"Improver {tokens['improver']:,})",
        ],
        [
            "time",
            f"{seconds['elapsed']:.1f} s elapsed (Generator {seconds['generator']:.1f} s, "
            f"evaluation {seconds['evaluation']:.1f} s)",
        ],
    ]
    parts = [
        f"# Run {s['run_id']}",
        f"Dataset: {s['dataset']} · variant: {', '.join(s['variant'])} · hardware limits: {limits}",
        "## Search (validation split)",
        _table(["measure", "value"], numbers),
        "![validation accuracy per iteration](accuracy.png)",
        "![success rate](success_rate.png)",
        "### Failures by kind",
        _table(["kind", "count"], [[k, str(v)] for k, v in s["failures"].items()])
        if s["failures"]
        else "None.",
    ]
    if "why_failed" in s:
        parts += [
            "### Why candidates failed",
            failures_markdown(s["why_failed"]),
            "![candidate lineage](lineage.png)",
        ]
    parts += [
        f"### Top {TOP_K} by validation accuracy",
        _table(
            ["iteration", "val accuracy", "params", "FLOPs", "train s", "latency ms"],
            [
                [
                    str(c["iteration"]),
                    _acc(c["val_accuracy"]),
                    _int(c["params"]),
                    _int(c["flops"]),
                    _num(c["train_seconds"]),
                    _num(c["latency_ms"], 2),
                ]
                for c in s["top"]
            ],
        )
        if s["top"]
        else "No candidate trained.",
        "## Final test (held-out test split)",
    ]
    final = s["final_test"]
    if final:
        epochs = final[0]["epochs"]
        parts.append(
            f"The top {len(final)} by validation accuracy, trained again for {epochs} epoch(s) "
            f"and scored once on the {final[0]['n_test']} test images, which the search never "
            "saw. Selection used the validation split only; these numbers did not steer it."
        )
        parts.append(
            _table(
                [
                    "rank",
                    "iteration",
                    "val accuracy (search)",
                    "test accuracy",
                    "params",
                    "train s",
                ],
                [
                    [
                        str(r["rank"]),
                        str(r["iteration"]),
                        _acc(r["val_accuracy"]),
                        _acc(r["test_accuracy"]) if r["status"] == "ok" else f"failed: {r['kind']}",
                        _int(r["params"]),
                        _num(r["train_seconds"]),
                    ]
                    for r in final
                ],
            )
        )
    else:
        parts.append("Not run (`python -m agent final_test RUN_ID` runs it).")
    parts += [
        "## Pareto front",
        "Candidates that no other beats on both validation accuracy and cost, over every measured "
        "network (kind over_limit: over a hardware limit).",
        "![accuracy vs. cost](pareto.png)",
    ]
    for key, cost in (("pareto_params", "parameters"), ("pareto_latency", "latency")):
        front = s[key]
        if not front:
            continue
        parts.append(f"Accuracy vs. {cost}:")
        parts.append(
            _table(
                ["iteration", "val accuracy", "params", "latency ms", "kind"],
                [
                    [
                        str(p["iteration"]),
                        _acc(p["val_accuracy"]),
                        _int(p["params"]),
                        _num(p["latency_ms"], 2),
                        p["kind"],
                    ]
                    for p in front
                ],
            )
        )
    if exported:
        parts.append(
            "## Export\nThe best network by validation accuracy: `../export/best_net.py` "
            "(weights `../export/best_net.pt` when kept); settings to reproduce the run in "
            "`../export/`."
        )
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- the report


def write_report(run_dir: Path) -> Path:
    """Compute, write and return `<run dir>/report/` (report.md, summary.json, three PNGs)."""
    rows = archive_rows(run_dir)
    settings = saved_settings(run_dir) or {}
    summary = summarise(rows, load_final_test(run_dir), settings, run_dir.name)
    parents = read_parents(run_dir)

    def code_of(row: dict[str, Any]) -> str | None:
        path = run_dir / row["code_path"] if row["code_path"] else None
        return path.read_text(encoding="utf-8") if path and path.is_file() else None

    attempts = attempt_rows(run_dir)
    summary["why_failed"] = failure_analysis(rows, parents, code_of, attempts)
    summary["lineage"] = lineage = lineage_graph(rows, parents)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    plot_lineage(lineage, out / "lineage.png", f"{run_dir.name}: candidate lineage")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_accuracy(rows, summary, out / "accuracy.png")
    plot_success_rate(rows, out / "success_rate.png")
    plot_pareto(rows, summary["limits"], out / "pareto.png")
    exported = (run_dir / EXPORT_DIR / "best_net.py").is_file()
    (out / "report.md").write_text(markdown(summary, exported), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("python -m agent report", __doc__)
    parser.add_argument("--json", action="store_true", help="print summary.json on stdout")
    return run_command(parser, argv, _report)


def _report(args: argparse.Namespace) -> int:
    out = write_report(existing_run_dir(args.run_id, args.runs_dir, ARCHIVE_FILE))
    if args.json:
        print((out / "summary.json").read_text(), end="")
    else:
        print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
