"""Where each candidate came from: the archived candidate its Generator prompt built on.

The first edge (`parent`) is the module the candidate was asked to fix, when the last candidate
it was shown had failed; otherwise the best candidate it was shown, or with `--parent tournament`
the network the tournament drew for it (why `tournament`). The second, lighter edge
(`also_shown`) is the last candidate, when it was shown too and is not the parent. A candidate
shown nothing (the first one, the single-shot baseline) is a root. Written to the `lineage`
table of the run's archive when the Generator's reply returns, keyed by iteration (a node re-run
after a crash rewrites its own row); the report draws the tree from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from agent.archive.paths import ArchiveTables, has_table
from agent.state import Candidate

SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage (
    iteration INTEGER PRIMARY KEY,
    parent INTEGER,
    also_shown INTEGER,
    why TEXT NOT NULL
);
"""


class Parents(TypedDict):
    parent: int | None
    also_shown: int | None
    # "fix" (of a failed last), "best" (built on the best), "tournament" (on the network the
    # tournament drew), "last", or "root"
    why: str


def parents_of(best: Candidate | None, last: Candidate | None, drawn: bool = False) -> Parents:
    """The edges of a candidate whose prompt showed `best` and `last` (None: not shown); `drawn`:
    `best` is the network a tournament drew, not necessarily the best."""
    if last is not None and last["result"].get("status") != "ok":
        also = best["iteration"] if best is not None else None
        return Parents(parent=last["iteration"], also_shown=also, why="fix")
    if best is not None:
        also = last["iteration"] if last is not None else None
        return Parents(
            parent=best["iteration"],
            also_shown=None if also == best["iteration"] else also,
            why="tournament" if drawn else "best",
        )
    if last is not None:
        return Parents(parent=last["iteration"], also_shown=None, why="last")
    return Parents(parent=None, also_shown=None, why="root")


class LineageLog(ArchiveTables):
    """The `lineage` table of one run's archive."""

    schema = SCHEMA

    def record(self, iteration: int, parents: Parents) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO lineage (iteration, parent, also_shown, why)"
                " VALUES (?,?,?,?)",
                (iteration, parents["parent"], parents["also_shown"], parents["why"]),
            )

    def parents(self) -> dict[int, Parents]:
        with self._connect() as db:
            rows = db.execute("SELECT iteration, parent, also_shown, why FROM lineage").fetchall()
        return {it: Parents(parent=p, also_shown=a, why=w) for it, p, a, w in rows}


def read_parents(run_dir: Path) -> dict[int, Parents]:
    """The recorded edges of a run (empty for a run archived before lineage was kept)."""
    return LineageLog(run_dir).parents() if has_table(run_dir, "lineage") else {}
