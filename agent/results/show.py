"""One candidate's whole story, or a run as a table, from the run archive.

    python -m agent show RUN_ID [ITERATION] [--runs-dir DIR] [--json]

With an iteration: where it came from (lineage), each LLM call that made it (the messages sent,
the raw reply, what was read from it), each attempt within the iteration (a mechanical fix shows
its diff), its code and result, the triple it closed and the advice the Improver drew from it.
Without: one row per candidate (iteration, kind, accuracy, parent, the advice in one line).
A run or iteration that does not exist: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from agent.archive.calls import Call, CallLog
from agent.archive.candidates import RunArchive
from agent.archive.lineage import read_parents
from agent.archive.paths import ARCHIVE_FILE, existing_run_dir
from agent.results.cli import run_command, run_parser
from sandbox.inert import inert

ADVICE_CHARS = 70  # the table's one-line advice


class NotArchived(LookupError):
    """The asked iteration is not in the run's archive."""


def attempt_rows(run_dir: Path, iteration: int | None = None) -> list[dict[str, Any]]:
    """The `attempts` table's rows (programs tried within an iteration before the archived one:
    re-asks, repairs, mechanical fixes with their diff), if the run has that table."""
    db = sqlite3.connect(run_dir / ARCHIVE_FILE, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name='attempts'").fetchone():
            return []
        where, args = ("WHERE iteration=?", (iteration,)) if iteration is not None else ("", ())
        query = f"SELECT * FROM attempts {where} ORDER BY iteration, attempt"
        return [dict(r) for r in db.execute(query, args)]
    finally:
        db.close()


def one_line(text: str | None, limit: int = ADVICE_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def run_table(run_dir: Path) -> list[dict[str, Any]]:
    parents = read_parents(run_dir)
    return [
        {
            "iteration": row["iteration"],
            "kind": row["kind"],
            "val_accuracy": row["val_accuracy"],
            "parent": parent["parent"] if (parent := parents.get(row["iteration"])) else None,
            "advice": row["next_suggestion"],
        }
        for row in RunArchive(run_dir).rows()
    ]


def story(run_dir: Path, iteration: int) -> dict[str, Any]:
    """Everything the archive holds about one candidate; NotArchived if it holds nothing."""
    rows = {r["iteration"]: r for r in RunArchive(run_dir).rows()}
    row = rows.get(iteration)
    if row is None:
        known = f"iterations {min(rows)}-{max(rows)}" if rows else "no candidate yet"
        raise NotArchived(f"run {run_dir.name} has no iteration {iteration} ({known})")
    code = (run_dir / row["code_path"]).read_text() if row["code_path"] else None
    triple = json.loads(row["closed_triple"]) if row["closed_triple"] else None
    advice = None
    if row["next_suggestion"] is not None:
        advice = {"problem": row["next_problem"], "suggestion": row["next_suggestion"]}
        advised = RunArchive(run_dir).advice().get(iteration) or {}  # empty for older runs
        advice.update({k: advised.get(f"next_{k}") for k in ("source", "move", "expect")})
    return {
        "run_id": run_dir.name,
        "iteration": iteration,
        "lineage": read_parents(run_dir).get(iteration),
        "calls": list(CallLog(run_dir).calls(iteration)),
        "attempts": attempt_rows(run_dir, iteration),
        "code": code,
        "result": json.loads(row["result"]),
        "closed_triple": triple,
        "advice": advice,
    }


def _call_text(call: Call) -> list[str]:
    head = (
        f"## {call['role'].capitalize()} call (attempt {call['attempt']}) · model "
        f"{call['model'] or '?'} · {call['tokens']} tokens · {call['seconds']:.1f} s"
    )
    if call["finish_reason"]:
        head += f" · finish {call['finish_reason']}"
    lines = [head, "### Prompt"]
    for message in call["messages"]:
        lines += [f"[{message['role']}]", message["content"]]
    lines += ["### Reply", call["reply"], "### Extracted"]
    extracted = call["extracted"]
    if "code" in extracted:
        lines.append("code (shown under Code below)" if call["role"] == "generator" else "code")
    elif "suggestion" in extracted:
        lines.append(f"problem: {extracted.get('problem', '')}")
        lines.append(f"suggestion: {extracted['suggestion']}")
    else:
        lines.append(f"nothing: {extracted.get('none', '?')}")
    return lines


def story_text(data: dict[str, Any]) -> str:
    result = data["result"]
    acc = result.get("val_accuracy")
    lines = [f"# Run {data['run_id']} · iteration {data['iteration']} · {result['kind']}"]
    lineage = data["lineage"]
    if lineage:
        parent = lineage["parent"]
        derived = "a root (shown no candidate)" if parent is None else f"iteration {parent}"
        also = lineage["also_shown"]
        extra = f"; also shown iteration {also}" if also is not None else ""
        lines.append(f"derived from: {derived} ({lineage['why']}){extra}")
    generator = [c for c in data["calls"] if c["role"] == "generator"]
    improver = [c for c in data["calls"] if c["role"] != "generator"]
    for call in generator:
        lines += _call_text(call)
    for attempt in data["attempts"]:
        fields = ", ".join(f"{k}={v}" for k, v in attempt.items() if k not in ("diff", "code"))
        lines.append(f"## Attempt {attempt.get('attempt', '?')}: {fields}")
        if attempt.get("diff"):
            lines += ["### Diff", str(attempt["diff"])]
    lines += ["## Code", data["code"] if data["code"] is not None else "(no code)"]
    lines.append("## Result")
    lines.append(f"kind {result['kind']} · {result.get('message', '')}")
    if acc is not None:
        lines.append(f"validation accuracy {acc:.4f} · params {result.get('params')}")
    if result.get("traceback"):
        lines += ["traceback:", result["traceback"]]
    triple = data["closed_triple"]
    lines.append("## Triple it closed")
    if triple:
        lines += [
            f"problem: {triple['problem']}",
            f"suggestion: {triple['suggestion']}",
            f"outcome: {triple['outcome']}",
        ]
        if triple.get("followed") is not None:  # the network changed where the advice said
            lines.append(f"followed: {'yes' if triple['followed'] else 'no'}")
    else:
        lines.append("(none: no advice was pending)")
    for call in improver:
        lines += _call_text(call)
    lines.append("## Advice it produced")
    advice = data["advice"]
    if advice:
        lines += [f"problem: {advice['problem']}", f"suggestion: {advice['suggestion']}"]
        if advice.get("source") == "menu":
            why = "the Improver's advice repeated the window or named no layer"
            lines.append(f"source: the host's menu move {advice.get('move')} ({why})")
        if advice.get("expect"):
            lines.append(f"checked next time: {advice['expect']}")
    else:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def table_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'iter':>4}  {'kind':<11} {'accuracy':>8}  {'parent':>6}  advice"]
    for r in rows:
        acc = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        parent = "-" if r["parent"] is None else str(r["parent"])
        lines.append(
            f"{r['iteration']:>4}  {r['kind']:<11} {acc:>8}  {parent:>6}  {one_line(r['advice'])}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("python -m agent show", __doc__)
    parser.add_argument("iteration", nargs="?", type=int, help="one candidate's whole story")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    return run_command(parser, argv, _show, (NotArchived,))


def _show(args: argparse.Namespace) -> int:
    run_dir = existing_run_dir(args.run_id, args.runs_dir, ARCHIVE_FILE)
    if args.iteration is None:
        rows = run_table(run_dir)
        payload: dict[str, Any] = {"run_id": args.run_id, "candidates": rows}
        text = table_text(rows)
    else:
        payload = story(run_dir, args.iteration)
        text = story_text(payload)
    # JSON escapes every control and non-ASCII character itself; the text is made inert for the
    # terminal, since prompts, replies and code may hold escape sequences
    print(json.dumps(payload) if args.json else inert(text), end="\n" if args.json else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
