"""A finished run's archive, written through RunArchive as the graph writes it, without a search:
successes, every failure kind, an over-limit net, a cache hit, ties in accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.archive.candidates import RunArchive
from sandbox.result import new_result

# (kind, accuracy, params, latency, code) per iteration; code repeats mean a cache hit
SCRIPT: list[tuple[str, float | None, int | None, float | None, str]] = [
    ("ok", 0.31, 40_000, 1.2, "a"),
    ("shape", None, None, None, "b"),
    ("ok", 0.45, 90_000, 2.5, "c"),
    ("syntax", None, None, None, "d"),
    ("over_limit", 0.62, 300_000, 9.0, "e"),
    ("ok", 0.45, 20_000, 0.8, "f"),  # ties the best accuracy with fewer params
    ("ok", 0.31, 40_000, 1.2, "a"),  # cache hit of iteration 0
    ("no_code", None, None, None, ""),
    ("oom", None, None, None, "g"),
    ("ok", 0.52, 150_000, 3.1, "h"),
    ("ok", 0.38, 25_000, 0.9, "i"),
    ("timeout", None, None, None, "j"),
]


def write_archive(run_dir: Path, script: list[Any] = SCRIPT) -> None:
    archive = RunArchive(run_dir)
    for i, (kind, acc, params, latency, code) in enumerate(script):
        extra: dict[str, Any] = {"val_accuracy": acc, "params": params, "latency_ms": latency}
        if acc is not None:
            extra |= {"flops": params * 30, "train_seconds": 1.0 + i / 10}
        result = dict(new_result(kind, f"{kind} message", f"hash-{code}", **extra))
        result["wall_seconds"] = 2.0 + i
        result["cached"] = i == 6
        archive.record_candidate(
            i, None if kind == "no_code" else f"# {code}\n", result, 100 + i, 0.5 + i / 100
        )
        archive.record_improvement(i, None, "p", "s", tokens=40 + i)
    settings = {"dataset": "mnist5k", "max_params": 200_000, "no_history": True}
    (run_dir / "settings.json").write_text(json.dumps(settings))
