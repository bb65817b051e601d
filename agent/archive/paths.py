"""One run's directory: every file of a run, by name, in one place, and how a run is reopened.

    <runs dir>/<run id>/
        settings.json       the run's settings (never API keys): a resumed run keeps them
        embedded_llm.json   only when the run uses the embedded LLM server: the model it runs
        checkpoints.sqlite  LangGraph's checkpoints, one thread per run id (resume)
        archive.sqlite      table `candidates` (`RunArchive`) and table `final_test` (here)
        candidates/         each candidate's code, <iteration>.py
        run.lock            one live process per run (`RunLock`)
        final/weights/      the final test's trained weights
        report/, export/    the run's report and its export

The search, the CLI, the results steps and the lock all find their files here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agent.settings import Settings, load_settings

SETTINGS_FILE = "settings.json"
EMBEDDED_FILE = "embedded_llm.json"
CHECKPOINTS_FILE = "checkpoints.sqlite"
ARCHIVE_FILE = "archive.sqlite"
CODE_DIR = "candidates"
LOCK_FILE = "run.lock"
WEIGHTS_DIR = Path("final") / "weights"
REPORT_DIR = "report"
EXPORT_DIR = "export"

FINAL_TEST_TABLE = """
CREATE TABLE IF NOT EXISTS final_test (
    rank INTEGER PRIMARY KEY,  -- 1 = best by validation accuracy
    iteration INTEGER NOT NULL,
    code_hash TEXT NOT NULL,
    val_accuracy REAL,  -- the search's score, on the validation split
    test_accuracy REAL,  -- this step's score, on the test split (None when it failed)
    epochs INTEGER NOT NULL,
    n_test INTEGER,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT,
    params INTEGER,
    flops INTEGER,
    train_seconds REAL,
    latency_ms REAL,
    peak_memory_mb REAL,
    weights_path TEXT,  -- relative to the run directory
    result TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def run_path(runs_dir: Path, run_id: str) -> Path:
    """Where run `run_id` lives under `runs_dir` (it may not exist yet)."""
    return runs_dir / run_id


def existing_run_dir(run_id: str, runs_dir: Path | None, holds: str) -> Path:
    """The directory of a finished or interrupted run (`runs_dir` defaults to NASLOOP_RUNS_DIR);
    FileNotFoundError naming the fix when it lacks `holds`, the file the caller reads."""
    path = run_path(runs_dir or load_settings().runs_dir, run_id)
    if not (path / holds).is_file():
        fix = "check the run id and --runs-dir"
        raise FileNotFoundError(f"no run in {path} (no {holds}): {fix}")
    return path


# -- settings ------------------------------------------------------------------------------------


def save_settings(settings: Settings, path: Path) -> None:
    data = settings.model_dump(mode="json")
    for key, value in settings:
        if isinstance(value, SecretStr):
            del data[key]  # keys stay in the environment, never in the run directory
    path.mkdir(parents=True, exist_ok=True)
    (path / SETTINGS_FILE).write_text(json.dumps(data, indent=2, default=str))


def saved_settings(path: Path) -> dict[str, Any] | None:
    """The run's settings as it saved them; None when it saved none (a new run)."""
    saved = path / SETTINGS_FILE
    return json.loads(saved.read_text()) if saved.is_file() else None


def reopen(path: Path, **overrides: Any) -> Settings:
    """A run's own settings, with `overrides` (those not None) winning; FileNotFoundError naming
    the fix when the directory holds no run. A resumed search, the final test and the export
    all reopen a run this way."""
    stored = saved_settings(path)
    if stored is None:
        raise FileNotFoundError(f"{path} holds no run (no {SETTINGS_FILE}): check the run id")
    return load_settings(**{**stored, **{k: v for k, v in overrides.items() if v is not None}})


def embedded_model(path: Path) -> str | None:
    """The model this run started the embedded LLM server with; None if it used another."""
    marker = path / EMBEDDED_FILE
    return json.loads(marker.read_text()).get("model") if marker.is_file() else None


def uses_embedded(path: Path) -> bool:
    return (path / EMBEDDED_FILE).is_file()


def mark_embedded(path: Path, model: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / EMBEDDED_FILE).write_text(json.dumps({"model": model}))


# -- the archive (archive.sqlite): one way in for every table ----------------------------------


@contextmanager
def archive_db(run_dir: Path) -> Iterator[sqlite3.Connection]:
    """One connection to the run's archive: rows by name, one transaction, always closed.

    Every table of the archive (candidates, attempts, calls, lineage, final_test) goes through
    here, so they share one file, one timeout and one way of committing."""
    db = sqlite3.connect(run_dir / ARCHIVE_FILE, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        with db:
            yield db
    finally:
        db.close()


def has_table(run_dir: Path, table: str) -> bool:
    """Whether the run's archive exists and holds `table` (older runs lack newer tables)."""
    if not (run_dir / ARCHIVE_FILE).is_file():
        return False
    with archive_db(run_dir) as db:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return found is not None


class ArchiveTables:
    """A view on some tables of a run's archive: created (if missing) when the view is made,
    reached through `archive_db` like every other table."""

    schema = ""  # the CREATE ... IF NOT EXISTS statements of this view's tables

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / ARCHIVE_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(self.schema)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return archive_db(self.run_dir)


# -- the final test's table ----------------------------------------------------------------------


def load_final_test(path: Path) -> list[dict[str, Any]]:
    """The stored final-test rows, best first; empty when there has been no final test."""
    if not has_table(path, "final_test"):
        return []
    with archive_db(path) as db:
        return [dict(r) for r in db.execute("SELECT * FROM final_test ORDER BY rank")]


def store_final_test(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the run's final-test rows with `rows` (one transaction)."""
    with archive_db(path) as db:
        db.executescript(FINAL_TEST_TABLE)
        db.execute("DELETE FROM final_test")
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO final_test ({names}) VALUES ({marks})", list(row.values()))
