"""Results by code hash, so that an identical candidate is never trained twice.

A SQLite file shared by all runs under one runs directory. The key pairs the normalised code's hash
with a fingerprint of everything else that decides the result (dataset split, hyperparameters,
limits), so changing a setting never returns a stale score.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.result import EvalResult


class ResultCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, code_hash TEXT, "
                "result TEXT NOT NULL, created REAL NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    @staticmethod
    def key(code_hash: str, fingerprint: str) -> str:
        return hashlib.sha256(f"{code_hash}\n{fingerprint}".encode()).hexdigest()

    def get(self, code_hash: str, fingerprint: str) -> EvalResult | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT result FROM results WHERE key = ?", (self.key(code_hash, fingerprint),)
            ).fetchone()
        if row is None:
            return None
        result: EvalResult = json.loads(row[0])
        return result

    def put(self, code_hash: str, fingerprint: str, result: EvalResult) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                (self.key(code_hash, fingerprint), code_hash, json.dumps(result), time.time()),
            )
