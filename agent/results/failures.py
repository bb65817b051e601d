"""The report's "why candidates failed": per failure kind, how often, how often fixed, an example.

Definitions (a unit test recomputes them from the archive):
- count: archived candidates of that kind (status not ok; over_limit included, as in the report).
- fixed later: a failure some later candidate fixed, i.e. a candidate that descends from it along
  first lineage edges (`Parents`: the module it fixed) trained successfully.
- example: the kind's most recent failure: its message and, where the traceback names a line of
  the candidate's module, that line of its code.
- longest streak: the most consecutive iterations that failed identically (same kind, same
  message), the sign of a search repeating itself.
- duplicates: candidates whose code was already seen this run (a cache hit, or a `duplicate`
  outcome), each with the iteration it repeated.
- caught within the iteration (runs with the check step's `attempts` table): per kind, the
  attempts that failed before their iteration's last one (a lint or dry-run failure, a repeat),
  and how many of those iterations still ended in a trained candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agent.archive.lineage import Parents
from agent.results.markdown import md_code, md_text

_CANDIDATE_LINE = re.compile(r'File "candidate\.py", line (\d+)')


def fault_line(
    traceback: str, code: str | None, shape_trace: list[dict[str, Any]] | None = None
) -> tuple[int, str] | None:
    """(line number, the line) of the candidate's module at fault: the last line of it that the
    traceback names, else the first call of the module where a shape trace says it failed."""
    if not code:
        return None
    lines = code.splitlines()
    numbers = _CANDIDATE_LINE.findall(traceback or "")
    if numbers:
        number = int(numbers[-1])
        return (number, lines[number - 1].strip()) if 0 < number <= len(lines) else None
    failed = [step for step in shape_trace or [] if step.get("failed") and step.get("module")]
    if failed:  # "features.3" was called as self.features(...): look for its top attribute
        call = f"self.{str(failed[-1]['module']).split('.')[0]}("
        for number, line in enumerate(lines, 1):
            if call in line:
                return number, line.strip()
    return None


def _first_edges(rows: list[dict[str, Any]], parents: dict[int, Parents]) -> dict[int, int]:
    """child → parent along the first edge (a run without lineage: the iteration before)."""
    archived = {r["iteration"] for r in rows}
    edges: dict[int, int] = {}
    for it in archived:
        edge = parents.get(it)
        parent = edge["parent"] if edge else (None if parents else it - 1)
        if parent is not None and parent in archived and parent < it:
            edges[it] = parent
    return edges


def failure_analysis(
    rows: list[dict[str, Any]],
    parents: dict[int, Parents],
    code_of: Callable[[dict[str, Any]], str | None] = lambda row: None,
    attempts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The section's numbers from the archive's rows (with `result` as the JSON it is stored as
    or as a dict) and the recorded lineage; `code_of(row)` reads a candidate's code."""
    import json

    edges = _first_edges(rows, parents)
    by_iteration = {r["iteration"]: r for r in rows}
    # a success fixes each of its first-edge ancestors
    fixed: set[int] = set()
    for row in rows:
        if row["status"] == "ok":
            node = edges.get(row["iteration"])
            while node is not None and node not in fixed:
                fixed.add(node)
                node = edges.get(node)
    failed = [r for r in rows if r["status"] != "ok"]
    kinds: dict[str, dict[str, Any]] = {}
    for row in failed:
        entry = kinds.setdefault(row["kind"], {"count": 0, "fixed": 0, "iterations": []})
        entry["count"] += 1
        entry["fixed"] += row["iteration"] in fixed
        entry["iterations"].append(row["iteration"])
    for kind, entry in kinds.items():
        entry["fixed_share"] = entry["fixed"] / entry["count"]
        example = by_iteration[entry["iterations"][-1]]
        result = example["result"]
        result = json.loads(result) if isinstance(result, str) else (result or {})
        line = fault_line(result.get("traceback", ""), code_of(example), result.get("shape_trace"))
        entry["example"] = {
            "iteration": example["iteration"],
            "message": example["message"] or "",
            "line_no": line[0] if line else None,
            "line": line[1] if line else None,
        }
        kinds[kind] = entry
    ordered = dict(sorted(kinds.items(), key=lambda kv: (-kv[1]["count"], kv[0])))
    return {
        "kinds": ordered,
        "longest_streak": longest_streak(rows),
        "duplicates": duplicates(rows),
        "caught": caught_within(rows, attempts or []),
    }


def caught_within(
    rows: list[dict[str, Any]], attempts: list[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """Per kind: failed attempts that were not their iteration's last, and how many of those
    iterations ended ok (the check step fixed or replaced the program)."""
    last: dict[int, int] = {}
    for attempt in attempts:
        last[attempt["iteration"]] = max(last.get(attempt["iteration"], -1), attempt["attempt"])
    status = {r["iteration"]: r["status"] for r in rows}
    caught: dict[str, dict[str, int]] = {}
    for attempt in attempts:
        it = attempt["iteration"]
        if attempt["attempt"] == last[it] or attempt["kind"] == "ok" or it not in status:
            continue
        entry = caught.setdefault(attempt["kind"], {"count": 0, "fixed": 0})
        entry["count"] += 1
        entry["fixed"] += status[it] == "ok"
    return dict(sorted(caught.items(), key=lambda kv: (-kv[1]["count"], kv[0])))


def longest_streak(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The longest run of consecutive iterations with the same failure (kind and message)."""
    best: dict[str, Any] | None = None
    start = 0
    ordered = sorted(rows, key=lambda r: r["iteration"])
    for i, row in enumerate(ordered):
        same = (
            i > 0
            and row["status"] != "ok"
            and ordered[i - 1]["status"] != "ok"
            and ordered[i - 1]["iteration"] == row["iteration"] - 1
            and (ordered[i - 1]["kind"], ordered[i - 1]["message"]) == (row["kind"], row["message"])
        )
        if not same:
            start = i
        length = i - start + 1
        if row["status"] != "ok" and (best is None or length > best["length"]):
            best = {
                "length": length,
                "kind": row["kind"],
                "message": row["message"] or "",
                "first": ordered[start]["iteration"],
                "last": row["iteration"],
            }
    return best


def duplicates(rows: list[dict[str, Any]]) -> list[dict[str, int]]:
    """Candidates whose code this run had seen before, with the iteration they repeated."""
    first_seen: dict[str, int] = {}
    found: list[dict[str, int]] = []
    for row in sorted(rows, key=lambda r: r["iteration"]):
        code_hash = row["code_hash"]
        repeat = row["cached"] or row["kind"] == "duplicate"
        if code_hash and code_hash in first_seen and repeat:
            found.append({"iteration": row["iteration"], "same_as": first_seen[code_hash]})
        elif code_hash and row["kind"] not in ("no_code", "bad_edit"):  # no code: no hash
            first_seen.setdefault(code_hash, row["iteration"])
    return found


def failures_markdown(analysis: dict[str, Any]) -> str:
    """The section's body (under its heading in report.md)."""
    kinds = analysis["kinds"]
    caught = analysis.get("caught") or {}
    fixed_early = "; ".join(
        f"{kind} {c['count']} ({c['fixed']} in iterations that then trained)"
        for kind, c in caught.items()
    )
    early = f"Caught by the check step within their iteration: {fixed_early}." if caught else ""
    if not kinds:
        return "\n\n".join(p for p in ("No candidate failed.", early) if p)
    head = "| kind | count | fixed later | example |\n|---|---|---|---|"
    lines = [head]
    for kind, entry in kinds.items():
        example = entry["example"]
        text = f"#{example['iteration']}: {md_text(example['message'], 120)}"
        if example["line"] is not None:
            text += f" — line {example['line_no']}: `{md_code(example['line'], 80)}`"
        lines.append(
            f"| {kind} | {entry['count']} | {entry['fixed']} ({entry['fixed_share']:.0%}) "
            f"| {text} |"
        )
    parts = ["\n".join(lines)]
    streak = analysis["longest_streak"]
    if streak and streak["length"] > 1:
        parts.append(
            f"Longest streak of identical failures: {streak['length']} times {streak['kind']} "
            f"(iterations {streak['first']}-{streak['last']}): {md_text(streak['message'], 120)}"
        )
    else:
        parts.append("No failure repeated identically in a row.")
    dups = analysis["duplicates"]
    if dups:
        listed = ", ".join(f"#{d['iteration']} = #{d['same_as']}" for d in dups[:20])
        more = f" and {len(dups) - 20} more" if len(dups) > 20 else ""
        parts.append(f"Duplicates (code already seen this run): {len(dups)}: {listed}{more}")
    else:
        parts.append("Duplicates (code already seen this run): none.")
    if early:
        parts.append(early)
    return "\n\n".join(parts)
