"""An independent recomputation of a run report's numbers, straight from archive.sqlite.

Written apart from agent/report.py on purpose (plain SQL, ranks by counting, dominance by brute
force), so that a test comparing the two catches a wrong number in either.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any


def query(run_dir: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(run_dir / "archive.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def count_ranks(values: list[float]) -> list[float]:
    """Rank of each value: 1 + how many are smaller + half of the other equal ones."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def rho(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    rx, ry = count_ranks(xs), count_ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True)) / (sx * sy)


def dominated(p: dict[str, Any], others: list[dict[str, Any]], cost: str) -> bool:
    return any(
        q is not p
        and q["val_accuracy"] >= p["val_accuracy"]
        and q[cost] <= p[cost]
        and (q["val_accuracy"] > p["val_accuracy"] or q[cost] < p[cost])
        for q in others
    )


def recompute(run_dir: Path) -> dict[str, Any]:
    """The report's numbers, each from its own query."""
    n = query(run_dir, "SELECT COUNT(*) FROM candidates")[0][0]
    ok = query(
        run_dir,
        "SELECT iteration, val_accuracy FROM candidates WHERE status = 'ok' ORDER BY iteration",
    )
    kinds = query(
        run_dir, "SELECT kind, COUNT(*) FROM candidates WHERE status != 'ok' GROUP BY kind"
    )
    best = query(
        run_dir,
        "SELECT iteration, val_accuracy FROM candidates WHERE status = 'ok'"
        " ORDER BY val_accuracy DESC, iteration ASC LIMIT 1",
    )
    tokens = query(
        run_dir,
        "SELECT SUM(gen_tokens), SUM(improver_tokens), SUM(gen_seconds),"
        " SUM(CASE WHEN cached = 0 THEN wall_seconds ELSE 0 END), COUNT(*) FILTER (WHERE cached)"
        " FROM candidates",
    )[0]
    span = query(
        run_dir,
        "SELECT MAX(created) - MIN(created - COALESCE(gen_seconds, 0)"
        " - CASE WHEN cached = 0 THEN COALESCE(wall_seconds, 0) ELSE 0 END) FROM candidates",
    )[0][0]
    # top candidates: best first, one per code
    top, seen = [], set()
    for row in query(
        run_dir,
        "SELECT iteration, code_hash, kind, val_accuracy, params, flops, train_seconds, result"
        " FROM candidates WHERE status = 'ok' ORDER BY val_accuracy DESC, iteration",
    ):
        if row["code_hash"] in seen:
            continue
        seen.add(row["code_hash"])
        top.append(
            {
                "iteration": row["iteration"],
                "kind": row["kind"],
                "val_accuracy": row["val_accuracy"],
                "params": row["params"],
                "flops": row["flops"],
                "train_seconds": row["train_seconds"],
                "latency_ms": json.loads(row["result"]).get("latency_ms"),
            }
        )
    # Pareto: every measured network (first of each code), brute-force dominance
    points, seen = [], set()
    for row in query(
        run_dir,
        "SELECT iteration, code_hash, val_accuracy, params, result FROM candidates"
        " WHERE val_accuracy IS NOT NULL ORDER BY iteration",
    ):
        if row["code_hash"] not in seen:
            seen.add(row["code_hash"])
            point = dict(row)
            point["latency_ms"] = json.loads(row["result"]).get("latency_ms")
            points.append(point)
    fronts = {}
    for cost in ("params", "latency_ms"):
        usable = [p for p in points if p[cost] is not None]
        front = [p for p in usable if not dominated(p, usable, cost)]
        fronts[cost] = sorted(p["iteration"] for p in front)
    final = query(run_dir, "SELECT * FROM final_test ORDER BY rank") if _has_final(run_dir) else []
    return {
        "iterations": n,
        "ok": len(ok),
        "success_rate": len(ok) / n,
        "failures": {k: c for k, c in kinds},
        "cached": tokens[4],
        "first_val_accuracy": ok[0]["val_accuracy"] if ok else None,
        "best_val_accuracy": best[0]["val_accuracy"] if best else None,
        "best_iteration": best[0]["iteration"] if best else None,
        "spearman_rho": rho([r["iteration"] for r in ok], [r["val_accuracy"] for r in ok]),
        "spearman_n": len(ok),
        "tokens": {
            "generator": tokens[0],
            "improver": tokens[1],
            "total": tokens[0] + tokens[1],
        },
        "seconds": {"generator": tokens[2], "evaluation": tokens[3], "elapsed": span},
        "top": top[:5],
        "pareto_params": fronts["params"],
        "pareto_latency": fronts["latency_ms"],
        "final_test": [dict(r) for r in final],
    }


def _has_final(run_dir: Path) -> bool:
    rows = query(run_dir, "SELECT name FROM sqlite_master WHERE name = 'final_test'")
    return bool(rows)


def assert_summary_matches(summary: dict[str, Any], run_dir: Path) -> None:
    """Every number of summary.json equals its independent recomputation."""
    expected = recompute(run_dir)
    close = ("success_rate", "spearman_rho", "first_val_accuracy", "best_val_accuracy")
    for key in ("iterations", "ok", "cached", "best_iteration", "spearman_n", "tokens"):
        assert summary[key] == expected[key], key
    for key in close:
        if expected[key] is None:
            assert summary[key] is None, key
        else:
            assert math.isclose(summary[key], expected[key], rel_tol=1e-9, abs_tol=1e-12), key
    assert summary["failures"] == expected["failures"]
    for key, value in expected["seconds"].items():
        assert math.isclose(summary["seconds"][key], value, rel_tol=1e-9, abs_tol=1e-9), key
    assert summary["top"] == expected["top"]
    assert sorted(p["iteration"] for p in summary["pareto_params"]) == expected["pareto_params"]
    assert sorted(p["iteration"] for p in summary["pareto_latency"]) == expected["pareto_latency"]
    final_keys = ("rank", "iteration", "val_accuracy", "test_accuracy", "epochs", "n_test")
    got = [{k: r[k] for k in final_keys} for r in summary["final_test"]]
    assert got == [{k: r[k] for k in final_keys} for r in expected["final_test"]]
