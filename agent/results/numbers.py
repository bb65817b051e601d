"""A run's numbers, computed from the archive alone: success rate, best-so-far, Spearman's rho,
the Pareto front, the top candidates, tokens and time (definitions: the report's docstring)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from agent.archive.candidates import RunArchive

TOP_K = 5
ROLLING = 10  # candidates in the rolling success rate
# A run's variant (for the ablation), from its settings: name, setting, value that names it
VARIANT_SETTINGS = (
    ("no_history", "memory", False),
    ("no_improver", "improver", False),
    ("no_reference", "reference", False),
    ("single_shot", "single_shot", True),
)
LIMIT_FIELDS = ("max_params", "max_flops", "max_peak_memory_mb", "max_latency_ms")


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


def measured_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def variant(settings: dict[str, Any]) -> list[str]:
    """The ablations a run's saved settings name (old runs saved `no_history: true` and such)."""
    named = [
        name
        for name, field, value in VARIANT_SETTINGS
        if settings.get(field, not value) == value or settings.get(name) is True
    ]
    return named or ["full"]


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
    measured = measured_points(rows)
    return {
        "run_id": run_id,
        "dataset": next((r["dataset"] for r in rows if r.get("dataset")), settings.get("dataset")),
        "variant": variant(settings),
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
