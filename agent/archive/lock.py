"""One live process per run: a second `agent.run --run-id X` while X runs is refused.

An exclusive `flock` on `<run dir>/run.lock`: the kernel drops it when the holder exits, however it
exits (SIGKILL included), so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from agent.archive.paths import LOCK_FILE


class RunBusy(RuntimeError):
    """Another live process holds the run; the message names it and the fix."""


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunBusy(
                f"run {self.path.parent.name} is already running (pid {holder}): wait for it to "
                "finish or stop that process, then resume with --run-id"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
