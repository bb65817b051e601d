"""A run's report: numbers computed from the archive, a markdown summary and PNG plots.

    python -m agent.report RUN_ID [--runs-dir DIR] [--json]

Also written at the end of every `python -m agent.run`. Everything goes to
`<runs dir>/<run id>/report/`:

    report.md         the summary: search numbers (validation split), failures by kind, the top
                      candidates, the final test (test split) in a section of its own, the Pareto
                      front, LLM tokens and time
    summary.json      the same numbers, for scripts (agent.ablate reads it)
    accuracy.png      validation accuracy per iteration, the best-so-far curve, failures by kind
    success_rate.png  share of candidates that trained, cumulative and over the last 10
    pareto.png        accuracy vs. parameters (and vs. latency when measured), front and limits
    lineage.png       the candidates' family tree, best path highlighted, failures by kind
                      (agent/results/lineage_plot.py); "why candidates failed" in report.md
                      comes from agent/results/failures.py

Definitions (each one is recomputed by tests/unit/test_report.py from the archive):
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
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from agent.archive import RunArchive
from agent.final_test import load_results
from agent.lineage import read_parents
from agent.results.failures import failure_analysis, failures_markdown
from agent.results.lineage_plot import lineage_graph, plot_lineage

REPORT_DIR = "report"
TOP_K = 5
ROLLING = 10  # candidates in the rolling success rate
ABLATION_FLAGS = ("no_history", "no_improver", "no_reference", "single_shot")
LIMIT_FIELDS = ("max_params", "max_flops", "max_peak_memory_mb", "max_latency_ms")


# --------------------------------------------------------------------------- numbers


def archive_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The archive's rows, each with latency_ms and peak_memory_mb lifted out of its result."""
    rows = RunArchive(run_dir).rows()
    for row in rows:
        result = json.loads(row["result"]) if row.get("result") else {}
        row["latency_ms"] = result.get("latency_ms")
        row["peak_memory_mb"] = result.get("peak_memory_mb")
        row["dataset"] = result.get("dataset") or None  # what the sandbox trained on
    return rows


def average_ranks(values: list[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho (Pearson correlation of average ranks); None below 3 points or if constant."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else None


def pareto_front(points: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    """Points not beaten on both accuracy (higher) and `cost` (lower), cheapest first."""
    usable = [p for p in points if p.get(cost) is not None and p.get("val_accuracy") is not None]
    usable.sort(key=lambda p: (p[cost], -p["val_accuracy"], p["iteration"]))
    front: list[dict[str, Any]] = []
    for point in usable:
        last = front[-1] if front else None
        tie = last is not None and (point[cost], point["val_accuracy"]) == (
            last[cost],
            last["val_accuracy"],
        )
        if last is None or point["val_accuracy"] > last["val_accuracy"] or tie:
            front.append(point)
    return front


def best_so_far(rows: list[dict[str, Any]]) -> list[float | None]:
    """The best successful validation accuracy after each candidate (None before the first)."""
    curve: list[float | None] = []
    best: float | None = None
    for row in rows:
        if row["status"] == "ok" and (best is None or row["val_accuracy"] > best):
            best = row["val_accuracy"]
        curve.append(best)
    return curve


def _measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates with an accuracy (ok or over a limit), one per code (the first of each)."""
    seen: set[str] = set()
    points = []
    for row in rows:
        if row["val_accuracy"] is None or row["code_hash"] in seen:
            continue
        seen.add(row["code_hash"])
        points.append(row)
    return points


def _candidate(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("iteration", "kind", "val_accuracy", "params", "flops", "train_seconds", "latency_ms")
    return {k: row.get(k) for k in keys}


def summarise(
    rows: list[dict[str, Any]],
    final: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    run_id: str = "",
) -> dict[str, Any]:
    """Every number of the report, from the archive's rows (and the final test's, if any)."""
    settings = settings or {}
    ok = [r for r in rows if r["status"] == "ok"]
    best = max(ok, key=lambda r: (r["val_accuracy"], -r["iteration"]), default=None)
    failures = Counter(r["kind"] for r in rows if r["status"] != "ok")
    top: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in sorted(ok, key=lambda r: (-r["val_accuracy"], r["iteration"])):
        if row["code_hash"] not in seen and len(top) < TOP_K:
            seen.add(row["code_hash"])
            top.append(_candidate(row))
    starts = [
        r["created"]
        - (r["gen_seconds"] or 0.0)
        - (0.0 if r["cached"] else (r["wall_seconds"] or 0.0))
        for r in rows
    ]
    measured = _measured(rows)
    return {
        "run_id": run_id,
        "dataset": next((r["dataset"] for r in rows if r.get("dataset")), settings.get("dataset")),
        "variant": [f for f in ABLATION_FLAGS if settings.get(f)] or ["full"],
        "limits": {k: settings[k] for k in LIMIT_FIELDS if settings.get(k) is not None},
        "iterations": len(rows),
        "ok": len(ok),
        "success_rate": len(ok) / len(rows) if rows else 0.0,
        "failures": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        "cached": sum(1 for r in rows if r["cached"]),
        "first_val_accuracy": ok[0]["val_accuracy"] if ok else None,
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "best_iteration": best["iteration"] if best else None,
        "spearman_rho": spearman(
            [float(r["iteration"]) for r in ok], [float(r["val_accuracy"]) for r in ok]
        ),
        "spearman_n": len(ok),
        "best_so_far": best_so_far(rows),
        "top": top,
        "tokens": {
            "generator": sum(r["gen_tokens"] for r in rows),
            "improver": sum(r["improver_tokens"] for r in rows),
            "total": sum(r["gen_tokens"] + r["improver_tokens"] for r in rows),
        },
        "seconds": {
            "generator": sum(r["gen_seconds"] or 0.0 for r in rows),
            "evaluation": sum(r["wall_seconds"] or 0.0 for r in rows if not r["cached"]),
            "elapsed": max(r["created"] for r in rows) - min(starts) if rows else 0.0,
        },
        "pareto_params": [_candidate(p) for p in pareto_front(measured, "params")],
        "pareto_latency": [_candidate(p) for p in pareto_front(measured, "latency_ms")],
        "final_test": [
            {k: v for k, v in r.items() if k not in ("result", "created")} for r in final or []
        ],
    }


# --------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


_KIND_MARKERS = "sDv^<>ph*+o"
_KIND_COLORS = ("tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan", "tab:orange")


def plot_accuracy(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """Validation accuracy per iteration with the best-so-far curve; failures below, by kind."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    ok = [r for r in rows if r["status"] == "ok"]
    over = [r for r in rows if r["status"] != "ok" and r["val_accuracy"] is not None]
    top.scatter(
        [r["iteration"] for r in ok],
        [r["val_accuracy"] for r in ok],
        s=28,
        color="tab:blue",
        label="trained (validation accuracy)",
        zorder=3,
    )
    if over:
        top.scatter(
            [r["iteration"] for r in over],
            [r["val_accuracy"] for r in over],
            s=40,
            marker="x",
            color="tab:red",
            label="over a hardware limit (not counted)",
            zorder=3,
        )
    curve = summary["best_so_far"]
    xs = [r["iteration"] for r, v in zip(rows, curve, strict=True) if v is not None]
    ys = [v for v in curve if v is not None]
    if ys:
        top.step(xs, ys, where="post", color="tab:green", lw=2, label="best so far")
    top.set_ylabel("validation accuracy")
    highest = max([r["val_accuracy"] for r in ok + over] or [1.0])
    top.set_ylim(0, min(1.02, highest * 1.25 + 0.02))  # room above the points for the legend
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=9, ncols=3)
    rho = summary["spearman_rho"]
    rho_text = f", Spearman ρ {rho:.2f}" if rho is not None else ""  # noqa: RUF001
    top.set_title(f"{summary['run_id']}: {summary['ok']}/{summary['iterations']} trained{rho_text}")
    failed = [r for r in rows if r["status"] != "ok"]
    kinds = sorted({r["kind"] for r in failed})
    for n, kind in enumerate(kinds):
        its = [r["iteration"] for r in failed if r["kind"] == kind]
        marker = "x" if kind == "over_limit" else _KIND_MARKERS[n % len(_KIND_MARKERS)]
        color = "tab:red" if kind == "over_limit" else _KIND_COLORS[n % len(_KIND_COLORS)]
        bottom.scatter(its, [n] * len(its), marker=marker, s=36, color=color)
    bottom.set_yticks(range(len(kinds)), [f"{k} ({summary['failures'][k]})" for k in kinds])
    bottom.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    if not kinds:
        bottom.text(0.5, 0.5, "no failures", ha="center", va="center", transform=bottom.transAxes)
    bottom.set_title("failures by kind", fontsize=10)
    bottom.set_xlabel("iteration")
    bottom.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_success_rate(rows: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    its = [r["iteration"] for r in rows]
    oks = [1 if r["status"] == "ok" else 0 for r in rows]
    cumulative = [sum(oks[: i + 1]) / (i + 1) for i in range(len(oks))]
    rolling = [
        sum(oks[max(0, i + 1 - ROLLING) : i + 1]) / len(oks[max(0, i + 1 - ROLLING) : i + 1])
        for i in range(len(oks))
    ]
    ax.plot(its, cumulative, color="tab:blue", lw=2, label="cumulative")
    ax.plot(its, rolling, color="tab:orange", lw=1.5, ls="--", label=f"last {ROLLING}")
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("success rate")
    ax.set_title("share of candidates that trained")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(rows: list[dict[str, Any]], limits: dict[str, Any], path: Path) -> None:
    """Accuracy vs. parameters (and vs. latency when measured), the front and the limits."""
    plt = _pyplot()
    points = _measured(rows)
    panels = [("params", "parameters", "max_params")]
    if any(p.get("latency_ms") is not None for p in points):
        panels.append(("latency_ms", "latency, batch 1 (ms)", "max_latency_ms"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.6, 4.4), squeeze=False)
    for ax, (cost, label, limit_name) in zip(axes[0], panels, strict=True):
        usable = [p for p in points if p.get(cost) is not None]
        ok = [p for p in usable if p["status"] == "ok"]
        over = [p for p in usable if p["status"] != "ok"]
        ax.scatter([p[cost] for p in ok], [p["val_accuracy"] for p in ok], s=28, label="trained")
        if over:
            ax.scatter(
                [p[cost] for p in over],
                [p["val_accuracy"] for p in over],
                s=40,
                marker="x",
                color="tab:red",
                label="over a limit",
            )
        front = pareto_front(usable, cost)
        if front:
            xs, ys = [p[cost] for p in front], [p["val_accuracy"] for p in front]
            ax.step(xs, ys, where="post", color="tab:green", lw=1.5)
            ax.scatter(
                xs, ys, s=110, facecolors="none", edgecolors="tab:green", lw=2, label="Pareto front"
            )
        if limits.get(limit_name) is not None:
            ax.axvline(limits[limit_name], color="tab:red", ls="--", lw=1, label="limit")
        values = [p[cost] for p in usable]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_xscale("log")  # sizes spanning orders of magnitude
        if not usable:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("accuracy vs. cost (one point per distinct network)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown


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
        parts.append("Not run (`python -m agent.final_test RUN_ID` runs it).")
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
    settings_file = run_dir / "settings.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    summary = summarise(rows, load_results(run_dir), settings, run_dir.name)
    parents = read_parents(run_dir)

    def code_of(row: dict[str, Any]) -> str | None:
        path = run_dir / row["code_path"] if row["code_path"] else None
        return path.read_text(encoding="utf-8") if path and path.is_file() else None

    summary["why_failed"] = failure_analysis(rows, parents, code_of)
    summary["lineage"] = lineage = lineage_graph(rows, parents)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    plot_lineage(lineage, out / "lineage.png", f"{run_dir.name}: candidate lineage")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_accuracy(rows, summary, out / "accuracy.png")
    plot_success_rate(rows, out / "success_rate.png")
    plot_pareto(rows, summary["limits"], out / "pareto.png")
    exported = (run_dir / "export" / "best_net.py").is_file()
    (out / "report.md").write_text(markdown(summary, exported), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.report", description=__doc__)
    parser.add_argument("run_id")
    parser.add_argument("--runs-dir", type=Path, help="default: NASLOOP_RUNS_DIR")
    parser.add_argument("--json", action="store_true", help="print summary.json on stdout")
    args = parser.parse_args(argv)
    from agent.settings import existing_run_dir
    from sandbox.settings import SettingsError

    try:
        out = write_report(existing_run_dir(args.run_id, args.runs_dir, "archive.sqlite"))
    except (OSError, SettingsError) as exc:
        print(f"nasloop: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print((out / "summary.json").read_text(), end="")
    else:
        print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
