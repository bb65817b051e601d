"""Search quality of one run, from its archive alone: LLM calls, success, novelty, fixes, streaks,
whether the Improver's advice was followed, and how often the Generator copied the network it
was shown.

LLM calls are counted from the archive, not from the servers (as RunArchive.llm_calls does,
which the loop's own `--llm-calls` budget reads): every iteration asked the Generator
once (its first attempt, source `generator`, archived even when the reply held no code); every
attempt with source `reask`, `repair` or `resample` is one more Generator call (the novelty check
asking again, the LLM-side fixes of a failed program: archive.CALL_SOURCES); every
iteration whose row carries Improver tokens asked the Improver once (the Improver's tokens are
archived per call, and llama.cpp and vLLM always report usage). A mechanical fix (`fix:<name>`)
is made on the host and is not a call. Retries of a failed HTTP request are not counted: they are
the same call, and the archive keeps no trace of them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from agent.archive.candidates import CALL_SOURCES, RunArchive
from agent.check.llm_fixes import STRATEGIES
from agent.steer.heat import copy_count
from sandbox.code import code_hash

NO_CODE_HASH = code_hash("")
# The per-run numbers (besides the fixes, a mapping) that a variant's seeds are averaged over
NUMBERS = (
    "llm_calls",
    "generator_calls",
    "improver_calls",
    "iterations",
    "trained",
    "success_rate",
    "distinct_candidates",
    "duplicates_avoided",
    "bad_edits",
    "fixes_succeeded_total",
    "longest_identical_failure_streak",
    "calls_to_first_trained",
    "best_val_accuracy",
    "mean_val_accuracy",
    "tokens",
    "tokens_per_trained",
    "advice_checked",
    "advice_followed_rate",
    "advice_repeats_replaced",
    "copies",
)


def _calls_per_iteration(rows: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> list[int]:
    asked = Counter(a["iteration"] for a in attempts if a["source"] in CALL_SOURCES)
    return [1 + asked[r["iteration"]] + (r["improver_tokens"] > 0) for r in rows]


def _fixes(attempts: list[dict[str, Any]], ok: set[int]) -> tuple[Counter[str], Counter[str]]:
    """Per fix name (a mechanical fix's, or `repair`, `resample`): how often it was made, and how
    often its iteration then trained a net."""
    tried: Counter[str] = Counter()
    succeeded: Counter[str] = Counter()
    for a in attempts:
        if a["source"].startswith("fix:") or a["source"] in STRATEGIES:
            name = a["source"].removeprefix("fix:")
            tried[name] += 1
            succeeded[name] += a["iteration"] in ok
    return tried, succeeded


def longest_identical_failures(rows: list[dict[str, Any]]) -> int:
    """The longest run of consecutive iterations that failed with the same kind and message."""
    longest = streak = 0
    last: tuple[str, str] | None = None
    for row in rows:
        failure = None if row["status"] == "ok" else (row["kind"], row["message"] or "")
        streak = streak + 1 if failure is not None and failure == last else int(failure is not None)
        last = failure
        longest = max(longest, streak)
    return longest


def advice_numbers(advice: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """From the advice table: how many candidates' advice could be checked, the share of those
    that changed where it said, and how often the host replaced repeated or generic advice with
    a menu move. A run archived before the table: 0, None, 0."""
    verdicts = [r["followed"] for r in advice.values() if r["followed"] is not None]
    return {
        "advice_checked": len(verdicts),
        "advice_followed_rate": sum(verdicts) / len(verdicts) if verdicts else None,
        "advice_repeats_replaced": sum(r["next_source"] == "menu" for r in advice.values()),
    }


def run_quality(run_dir: Path) -> dict[str, Any]:
    """One run's search-quality numbers; every key present (None or 0 when nothing trained)."""
    archive = RunArchive(run_dir)
    rows = archive.rows()
    attempts = archive.attempts()
    calls = _calls_per_iteration(rows, attempts)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    ok = {r["iteration"] for r in ok_rows}
    accuracies = [float(r["val_accuracy"]) for r in ok_rows if r["val_accuracy"] is not None]
    tried, succeeded = _fixes(attempts, ok)
    first = next((n for n, r in enumerate(rows) if r["status"] == "ok"), None)
    # the Improver call of the first trained iteration came after it: not counted
    to_first = (
        None
        if first is None
        else sum(calls[:first]) + calls[first] - (rows[first]["improver_tokens"] > 0)
    )
    tokens = sum(r["gen_tokens"] + r["improver_tokens"] for r in rows)
    hashes = {r["code_hash"] for r in rows if r["code_hash"] and r["code_hash"] != NO_CODE_HASH}
    generator, improver = (
        len(rows) + sum(a["source"] in CALL_SOURCES for a in attempts),
        sum(r["improver_tokens"] > 0 for r in rows),
    )
    return {
        "run_id": run_dir.name,
        "llm_calls": generator + improver,
        "generator_calls": generator,
        "improver_calls": improver,
        "iterations": len(rows),
        "trained": len(ok_rows),
        "success_rate": len(ok_rows) / len(rows) if rows else 0.0,
        "distinct_candidates": len(hashes),
        "duplicates_avoided": sum(1 for a in attempts if a["stage"] == "novelty"),
        # replies whose edit blocks did not fit the code shown (--edit-mode diff|auto)
        "bad_edits": sum(1 for a in attempts if a["kind"] == "bad_edit"),
        "fixes_tried": dict(tried),
        "fixes_succeeded": dict(succeeded),
        "fixes_succeeded_total": sum(succeeded.values()),
        "longest_identical_failure_streak": longest_identical_failures(rows),
        "calls_to_first_trained": to_first,
        "best_val_accuracy": max(accuracies) if accuracies else None,
        "mean_val_accuracy": sum(accuracies) / len(accuracies) if accuracies else None,
        "tokens": tokens,
        "tokens_per_trained": tokens / len(ok_rows) if ok_rows else None,
        **advice_numbers(archive.advice()),
        # candidates that copied the network they were shown (agent/steer/heat.py's `copied`)
        "copies": copy_count(archive),
        "kinds": dict(Counter(str(r["kind"]) for r in rows)),
    }
