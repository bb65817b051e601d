"""The run archive: every candidate of a run, on disk, before the graph moves on.

`<runs dir>/<run id>/` holds `archive.sqlite` (one row per iteration: result, triple, timings,
tokens), `candidates/<iteration>.py` (each candidate's code as a file) and `settings.json`. Rows
are keyed by iteration and written with upserts, so a node re-run after a crash rewrites its own
row instead of adding a second one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.archive.paths import CODE_DIR, ArchiveTables

# Attempt sources that are one more Generator call each, besides an iteration's first ask: the
# novelty check's re-ask, and the LLM-side fixes (agent/check/llm_fixes.py). A `fix:<name>` is the
# host's, no call.
CALL_SOURCES = ("reask", "repair", "resample")

SCHEMA = """
CREATE TABLE IF NOT EXISTS candidates (
    iteration INTEGER PRIMARY KEY,
    code_hash TEXT,
    code_path TEXT,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT,
    val_accuracy REAL,
    params INTEGER,
    flops INTEGER,
    train_seconds REAL,
    wall_seconds REAL,
    cached INTEGER NOT NULL DEFAULT 0,
    gen_tokens INTEGER NOT NULL DEFAULT 0,
    gen_seconds REAL,
    improver_tokens INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    closed_triple TEXT,
    next_problem TEXT,
    next_suggestion TEXT,
    created REAL NOT NULL
);
-- every program an iteration looked at, in order: the Generator's answer, its re-asks when it
-- repeated itself, the host's mechanical fixes, the Generator's repairs and resamples of a
-- failed program; the candidates row holds the last one's result
CREATE TABLE IF NOT EXISTS attempts (
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    source TEXT NOT NULL,  -- generator | reask | fix:<name> | repair | resample
    code_hash TEXT,
    code TEXT,
    diff TEXT,
    stage TEXT,  -- where its result came from: novelty, lint, dry_run, train, none
    kind TEXT NOT NULL,
    message TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (iteration, attempt)
);
-- the architecture fingerprint of an attempt whose dry run computed one (sandbox/inside/runner.py's
-- architecture_fingerprint): the novelty check's second key, beside the code hash
CREATE TABLE IF NOT EXISTS architectures (
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (iteration, attempt)
);
-- the advice around each candidate (agent/replies/advice_moves.py): whether the candidate
-- followed the advice it was given, and who wrote the advice opened after it; archives made
-- before this table have it empty
CREATE TABLE IF NOT EXISTS advice (
    iteration INTEGER PRIMARY KEY,
    followed INTEGER,  -- 1 or 0; NULL when that advice expected nothing checkable
    next_source TEXT,  -- improver | menu (the host replaced repeated or generic advice)
    next_move TEXT,  -- the menu move it was, by id
    next_expect TEXT  -- what the next network must show, e.g. batchnorm>1
);
"""
# seen_before's key for an architecture fingerprint (a bare key is a normalised code hash)
ARCH = "arch:"


@dataclass(frozen=True)
class SeenProgram:
    """The first attempt of this run that looked at a given program: what came of it."""

    iteration: int
    kind: str
    message: str


class RunArchive(ArchiveTables):
    schema = SCHEMA

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.code_dir = run_dir / CODE_DIR
        self.code_dir.mkdir(parents=True, exist_ok=True)

    def record_candidate(
        self,
        iteration: int,
        code: str | None,
        result: Mapping[str, Any],
        gen_tokens: int = 0,
        gen_seconds: float | None = None,
    ) -> None:
        code_path = None
        if code is not None:
            path = self.code_dir / f"{iteration:05d}.py"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(code, encoding="utf-8")
            tmp.replace(path)
            code_path = str(path.relative_to(self.run_dir))
        row = (
            iteration,
            result.get("code_hash"),
            code_path,
            result["status"],
            result["kind"],
            result.get("message"),
            result.get("val_accuracy"),
            result.get("params"),
            result.get("flops"),
            result.get("train_seconds"),
            result.get("wall_seconds"),
            int(bool(result.get("cached"))),
            gen_tokens,
            gen_seconds,
            json.dumps(result),
            time.time(),
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO candidates (iteration, code_hash, code_path, status, kind, message,"
                " val_accuracy, params, flops, train_seconds, wall_seconds, cached, gen_tokens,"
                " gen_seconds, result, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(iteration) DO UPDATE SET code_hash=excluded.code_hash,"
                " code_path=excluded.code_path, status=excluded.status, kind=excluded.kind,"
                " message=excluded.message, val_accuracy=excluded.val_accuracy,"
                " params=excluded.params, flops=excluded.flops,"
                " train_seconds=excluded.train_seconds, wall_seconds=excluded.wall_seconds,"
                " cached=excluded.cached, gen_tokens=excluded.gen_tokens,"
                " gen_seconds=excluded.gen_seconds, result=excluded.result",
                row,
            )

    def record_improvement(
        self,
        iteration: int,
        closed_triple: dict[str, Any] | None,
        problem: str | None,
        suggestion: str | None,
        tokens: int = 0,
        advice: Mapping[str, Any] | None = None,
    ) -> None:
        """What the Improver made of `iteration`: the triple it closed (with, when it was checked,
        whether `iteration` followed that advice) and the advice it opened (`advice`: its
        source, move and expect, given once per Improver call)."""
        followed = (closed_triple or {}).get("followed")
        advised = advice or {}
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO advice VALUES (?,?,?,?,?)",
                (
                    iteration,
                    None if followed is None else int(followed),
                    advised.get("source"),
                    advised.get("move"),
                    advised.get("expect"),
                ),
            )
            db.execute(
                "UPDATE candidates SET closed_triple=?, next_problem=?, next_suggestion=?,"
                " improver_tokens=? WHERE iteration=?",
                (
                    json.dumps(closed_triple) if closed_triple else None,
                    problem,
                    suggestion,
                    tokens,
                    iteration,
                ),
            )

    def record_attempt(
        self,
        iteration: int,
        attempt: int,
        source: str,
        code: str | None,
        code_hash: str,
        result: dict[str, Any],
        stage: str,
        diff: str = "",
        fingerprint: str | None = None,
    ) -> None:
        """One attempt of `iteration` (numbered from 0); a re-run node rewrites its own rows."""
        row = (iteration, attempt, source, code_hash, code, diff, stage, result["kind"])
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO attempts (iteration, attempt, source, code_hash, code,"
                " diff, stage, kind, message, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (*row, result.get("message"), time.time()),
            )
            if fingerprint:
                db.execute(
                    "INSERT OR REPLACE INTO architectures VALUES (?,?,?)",
                    (iteration, attempt, fingerprint),
                )

    def forget_attempts(self, iteration: int) -> None:
        """Drop `iteration`'s attempts: its node is run again (after a crash) from the start."""
        with self._connect() as db:
            db.execute("DELETE FROM attempts WHERE iteration=?", (iteration,))
            db.execute("DELETE FROM architectures WHERE iteration=?", (iteration,))

    def attempts(self, iteration: int | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE iteration=?", (iteration,)) if iteration is not None else ("", ())
        with self._connect() as db:
            return [
                dict(r)
                for r in db.execute(
                    f"SELECT * FROM attempts {where} ORDER BY iteration, attempt", args
                )
            ]

    def llm_calls(self, asking: int | None = None) -> tuple[int, int]:
        """(Generator calls, Improver calls) so far: one Generator call per iteration plus one per
        attempt of a CALL_SOURCES source; one Improver call per row carrying its tokens (servers
        report usage). A mechanical fix is no call; an HTTP retry is the same call. `asking`: an
        iteration under way, whose first ask counts though its row is not written yet."""
        sources = ",".join("?" * len(CALL_SOURCES))
        with self._connect() as db:
            rows, improver = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(improver_tokens > 0), 0) FROM candidates"
                " WHERE iteration IS NOT ?",
                (asking,),
            ).fetchone()
            (asked,) = db.execute(
                f"SELECT COUNT(*) FROM attempts WHERE source IN ({sources})", CALL_SOURCES
            ).fetchone()
        return int(rows) + int(asked) + (asking is not None), int(improver)

    def seen_before(self, iteration: int) -> dict[str, SeenProgram]:
        """Every program hash this run looked at before `iteration`, with its first outcome.

        Read from disk, not from graph state: a resumed run knows all it has tried, and the
        state stays constant in size. Candidates of runs older than the attempts table count too.
        An architecture fingerprint a dry run computed is a key too, as ARCH + fingerprint: two
        programs that differ only in text compute the same network.
        """
        seen: dict[str, SeenProgram] = {}
        with self._connect() as db:
            rows = db.execute(
                "SELECT iteration, code_hash, kind, message FROM candidates WHERE iteration < ?"
                " UNION ALL SELECT iteration, code_hash, kind, message FROM attempts"
                " WHERE iteration < ? UNION ALL SELECT f.iteration, ? || f.fingerprint, a.kind,"
                " a.message FROM architectures f JOIN attempts a USING (iteration, attempt)"
                " WHERE f.iteration < ? ORDER BY iteration DESC",
                (iteration, iteration, ARCH, iteration),
            ).fetchall()
        for row in rows:  # newest first, so the oldest sighting of a hash wins
            if row["code_hash"]:
                seen[row["code_hash"]] = SeenProgram(
                    row["iteration"], row["kind"], row["message"] or ""
                )
        return seen

    def advice(self) -> dict[int, dict[str, Any]]:
        """Each iteration's advice row (see the table), by iteration; empty for older runs."""
        with self._connect() as db:
            return {r["iteration"]: dict(r) for r in db.execute("SELECT * FROM advice")}

    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [dict(r) for r in db.execute("SELECT * FROM candidates ORDER BY iteration")]

    def trained(self, before: int) -> list[dict[str, Any]]:
        """The rows of the candidates that trained (status ok) before iteration `before`, best
        validation accuracy first, the earlier first on a tie (as `tally` picks the best)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM candidates WHERE status = 'ok' AND iteration < ?"
                " ORDER BY val_accuracy DESC, iteration",
                (before,),
            )
            return [dict(r) for r in rows]

    def recent(self, before: int, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` rows before iteration `before`, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM candidates WHERE iteration < ? ORDER BY iteration DESC LIMIT ?",
                (before, limit),
            )
            return [dict(r) for r in rows]

    def code_at(self, iteration: int) -> str | None:
        """The code candidate `iteration` archived (None: none, or its file is gone)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT code_path FROM candidates WHERE iteration = ?", (iteration,)
            ).fetchone()
        try:
            return (self.run_dir / row[0]).read_text(encoding="utf-8") if row and row[0] else None
        except OSError:
            return None

    def summary(self) -> dict[str, Any]:
        rows = self.rows()
        ok = [r for r in rows if r["status"] == "ok"]
        best = max(ok, key=lambda r: r["val_accuracy"], default=None)
        return {
            "iterations": len(rows),
            "ok": len(ok),
            "success_rate": len(ok) / len(rows) if rows else 0.0,
            "best_val_accuracy": best["val_accuracy"] if best else None,
            "best_iteration": best["iteration"] if best else None,
            "best_code_path": str(self.run_dir / best["code_path"]) if best else None,
            "llm_tokens": sum(r["gen_tokens"] + r["improver_tokens"] for r in rows),
        }
