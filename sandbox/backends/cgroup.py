"""A throw-away control group per job: a hard memory and process ceiling, and a kill switch.

Works with cgroup v2 (one unified tree) and v1 (separate memory and pids hierarchies). Creating
one needs write access to the hierarchy (root, or a delegated subtree); `Cgroup.create` returns
None where that is not possible, and the process backend falls back to rlimits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    def __init__(self, dirs: list[Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2

    @classmethod
    def create(cls, memory_mb: int, pids: int, root: Path = ROOT) -> Cgroup | None:
        name = f"nasloop-{uuid.uuid4().hex[:12]}"
        limit = str(memory_mb * 2**20)
        try:
            if (root / "cgroup.controllers").exists():
                group = root / name
                group.mkdir()
                cg = cls([group], v2=True)
                (group / "memory.max").write_text(limit)
                (group / "pids.max").write_text(str(pids))
                if (group / "memory.swap.max").exists():
                    (group / "memory.swap.max").write_text("0")
                return cg
            memory, pid_dir = root / "memory" / name, root / "pids" / name
            memory.mkdir()
            cg = cls([memory], v2=False)
            pid_dir.mkdir()
            cg.dirs.append(pid_dir)
            (memory / "memory.limit_in_bytes").write_text(limit)
            if (memory / "memory.memsw.limit_in_bytes").exists():
                (memory / "memory.memsw.limit_in_bytes").write_text(limit)
            (pid_dir / "pids.max").write_text(str(pids))
            return cg
        except OSError:
            if "cg" in locals():
                cg.remove()
            return None

    @property
    def procs_files(self) -> list[str]:
        """Where a process writes its pid to join (all hierarchies)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def oom_killed(self) -> bool:
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (self.dirs[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def peak_memory_mb(self) -> float | None:
        """The most memory the group's processes held at once (page cache and tmpfs included),
        as the kernel counted it: a figure none of them can change."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        try:
            return int((self.dirs[0] / name).read_text()) / 2**20
        except (OSError, ValueError):
            return None

    def kill_all(self, wait_s: float = 5.0) -> None:
        """SIGKILL every process in the group, including ones that left the session."""
        if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
            (self.dirs[0] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + wait_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(50):  # rmdir fails while the kernel is still reaping the last task
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def remove_empty_groups(root: Path = ROOT) -> None:
    """Remove the groups of jobs whose runner was killed before it could clean up.

    rmdir only succeeds on a group with no processes left, so a live job's group is never touched.
    """
    for group in [*root.glob("nasloop-*"), *root.glob("*/nasloop-*")]:
        with contextlib.suppress(OSError):
            group.rmdir()
