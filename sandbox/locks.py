"""One exclusive file lock (`flock`) held for a block: the kernel drops it if the holder dies."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Wait for, then hold, the exclusive lock on `path` (created if missing) for the block.

    Used where processes on one machine must take turns: building llama-server into the shared
    cache, preparing a dataset once per Ray node."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
