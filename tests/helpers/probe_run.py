"""`python -m agent.run`, recording what every sandbox job was given, for test_results.py.

    python -m tests.helpers.probe_run LOG [agent.run flags ...]

Appends one JSON line per event to LOG:
- {"event": "job", "files": {name: sha256}, "self_test": bool}: the data directory a backend was
  handed for a job, file by file (every job of every evaluator: the self-test's, the search's and
  the final test's);
- {"event": "load", "path": ...}: a tensor file the host process loaded (scores, labels);
- {"event": "final_test"}: the final test begins.
Then it runs agent.run's main as `python -m agent.run` would. The recording wraps the backends
and torch.load from outside; nothing in agent/ or sandbox/ knows about it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

import agent.results.final_test
import sandbox.evaluate
from sandbox.backends.base import Job, RunOutcome
from sandbox.selftest import KNOWN_GOOD_NET

LOG = Path(sys.argv[1])


def record(event: dict[str, Any]) -> None:
    with LOG.open("a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RecordingBackend:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, job: Job) -> RunOutcome:
        files = {p.name: sha256(p) for p in sorted(job.data_dir.iterdir()) if p.is_file()}
        code = (job.job_dir / "candidate.py").read_text(encoding="utf-8")
        self_test = code == KNOWN_GOOD_NET  # the run's sandbox self-test, not a candidate
        record(
            {"event": "job", "data_dir": str(job.data_dir), "files": files, "self_test": self_test}
        )
        outcome: RunOutcome = self.inner.run(job)
        return outcome


_init = sandbox.evaluate.Evaluator.__init__


def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    if not isinstance(self.backend, RecordingBackend):  # the self-test reuses a recorded one
        self.backend = RecordingBackend(self.backend)


_load = torch.load


def recording_load(f: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(f, str | os.PathLike):
        record({"event": "load", "path": str(f)})
    return _load(f, *args, **kwargs)


_final = agent.results.final_test.run_final_test


def recording_final(*args: Any, **kwargs: Any) -> Any:
    record({"event": "final_test"})
    return _final(*args, **kwargs)


sandbox.evaluate.Evaluator.__init__ = recording_init  # type: ignore[method-assign]
torch.load = recording_load
agent.results.final_test.run_final_test = recording_final

if __name__ == "__main__":
    from agent.run import main

    sys.exit(main(sys.argv[2:]))
