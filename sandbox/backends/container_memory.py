"""A Docker job's peak memory, read by the host from the container's cgroup: a figure the
candidate cannot forge, since no process inside the container can write it.

Two shapes, one per Docker backend:
- `JobParent` (a container per job): the engine removes a container's cgroup as soon as the
  container exits, taking its peak with it. So the host makes an empty cgroup for the job and
  asks the engine to put the container under it (`cgroup_parent`); memory is accounted
  hierarchically, so the parent's peak covers the container, and the parent outlives it. Needs
  the cgroupfs driver (the systemd driver takes only `*.slice` parents, which systemd owns).
- `ContainerPeak` (the warm worker): the container lives across jobs, so its own cgroup is found
  from its first process and its peak is reset before each job is handed over. The figure then
  includes the worker's own memory (an imported torch) and the page cache the job charged.

Both need an engine on this host whose cgroup tree this process sees (root, a unix socket, no
private cgroup namespace between us). Anywhere else they return None, and a peak-memory limit
fails as "cannot be verified" while it is active, as on any backend that measures nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.backends.cgroup import ROOT
from sandbox.backends.workdir import owner_alive, owner_tag

LOCAL_ENGINE_URL = "http+docker://localhost"  # what the Docker SDK calls a unix-socket engine
# A parent is named "<prefix><pid>-<start>-<random>" after the process that made it (workdir's
# owner tag), so that one left by a killed owner can be told from a live run's and removed.
PARENT_PREFIX = "nasloop-container-"
_REMOVE_WAIT_S = 10.0  # rmdir fails while the engine is still deleting the container's group


def _is_v2(root: Path) -> bool:
    return (root / "cgroup.controllers").exists()


def _peak_file(group: Path, v2: bool) -> Path:
    return group / ("memory.peak" if v2 else "memory.max_usage_in_bytes")


def _to_mb(raw: str | bytes) -> float | None:
    """A peak in bytes as MiB; None for 0, which means nothing ever ran in that group."""
    try:
        value = int(raw)
    except ValueError:
        return None
    return value / 2**20 if value > 0 else None


def engine_is_local(client: Any) -> bool:
    """Whether the engine answers on a unix socket, hence runs on this kernel (not tcp or ssh)."""
    return str(getattr(client.api, "base_url", "")) == LOCAL_ENGINE_URL


class JobParent:
    """An empty cgroup made for one job, that Docker puts the job's container under."""

    def __init__(self, name: str, root: Path, v2: bool) -> None:
        self.name = name
        self.root = root
        self.v2 = v2

    @classmethod
    def create(cls, client: Any, root: Path = ROOT) -> JobParent | None:
        """A fresh parent group, or None where the host cannot read one (a remote engine, the
        systemd driver, no write access to the hierarchy)."""
        try:
            if not engine_is_local(client) or client.info().get("CgroupDriver") != "cgroupfs":
                return None
        except Exception:  # the engine's own errors surface where the job is started
            return None
        v2 = _is_v2(root)
        parent = cls(f"{PARENT_PREFIX}{owner_tag()}-{uuid.uuid4().hex[:8]}", root, v2)
        try:  # the memory hierarchy only: the engine makes the others itself, as it would anyway
            (root / parent.name if v2 else root / "memory" / parent.name).mkdir()
        except OSError:
            return None
        return parent

    @property
    def cgroup_parent(self) -> str:
        """The `cgroup_parent` to create the container with (cgroupfs: a path from the root)."""
        return f"/{self.name}"

    def groups(self) -> list[Path]:
        """The parent's directory in every hierarchy where it exists (v1 has one per controller)."""
        return [g for g in [self.root / self.name, *self.root.glob(f"*/{self.name}")] if g.is_dir()]

    def peak_mb(self) -> float | None:
        """The most memory the job's container held at once; None when nothing was ever charged
        here (an engine that put the container somewhere else)."""
        memory = self.root / self.name if self.v2 else self.root / "memory" / self.name
        try:
            return _to_mb(_peak_file(memory, self.v2).read_text())
        except OSError:
            return None

    def remove(self) -> bool:
        """Remove the parent from every hierarchy, once the engine has removed the container's
        own group below it; False if some directory is still there after a wait."""
        deadline = time.monotonic() + _REMOVE_WAIT_S
        while True:
            for group in self.groups():
                with contextlib.suppress(OSError):
                    group.rmdir()
            if not self.groups():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def reap_parents(root: Path = ROOT) -> None:
    """Remove the parents whose owner is gone (killed before its `finally`), once the engine
    has removed their containers: rmdir takes only an empty group, never a running job's."""
    for group in [*root.glob(f"{PARENT_PREFIX}*"), *root.glob(f"*/{PARENT_PREFIX}*")]:
        pid, _, rest = group.name.removeprefix(PARENT_PREFIX).partition("-")
        start = rest.partition("-")[0]
        if pid.isdigit() and start and not owner_alive(int(pid), start):
            with contextlib.suppress(OSError):
                group.rmdir()


class ContainerPeak:
    """The memory peak of a running container's own cgroup, reset before each job.

    v1: writing 0 to memory.max_usage_in_bytes sets the peak to the current usage. v2 (kernel
    6.12 and later): writing to memory.peak does the same, but only for reads through that same
    open file, so the file stays open for the container's life. A v2 kernel whose memory.peak
    cannot be reset gives None: a lifetime peak would carry the jobs before.
    """

    def __init__(self, peak_file: Path, v2: bool) -> None:
        self.peak_file = peak_file
        self.v2 = v2
        self._fd: int | None = None
        self._armed = False  # reset since the last read: the next read is one job's peak

    @classmethod
    def find(cls, client: Any, container: Any, root: Path = ROOT) -> ContainerPeak | None:
        """The container's memory group, from its first process (`State.Pid`), or None where the
        host cannot see it. The group's path must name the container's id, and the group must
        hold that pid: a pid seen through another pid namespace fails both checks."""
        try:
            container.reload()  # the pid is known once the container has started
            pid = int(container.attrs["State"]["Pid"])
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid > 0 else []
        except Exception:  # no such key, no such process, or the engine's own error
            return None
        if not engine_is_local(client):
            return None
        v2 = _is_v2(root)
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if (controllers == "" if v2 else "memory" in controllers.split(",")) and path:
                group = (root if v2 else root / "memory") / path.lstrip("/")
                break
        else:
            return None
        try:
            held = str(pid) in (group / "cgroup.procs").read_text().split()
        except OSError:
            return None
        return cls(_peak_file(group, v2), v2) if container.id in path and held else None

    def reset(self) -> None:
        """Start counting afresh: call between jobs, before the next one is handed over."""
        self._armed = False
        try:
            if not self.v2:
                self.peak_file.write_text("0")
            else:
                if self._fd is None:
                    self._fd = os.open(self.peak_file, os.O_RDWR | os.O_CLOEXEC)
                os.write(self._fd, b"reset\n")
        except OSError:
            return
        self._armed = True

    def peak_mb(self) -> float | None:
        """The peak since the last reset (the job's, the worker's own memory included)."""
        if not self._armed:
            return None
        self._armed = False
        try:
            if not self.v2:
                return _to_mb(self.peak_file.read_text())
            assert self._fd is not None
            return _to_mb(os.pread(self._fd, 64, 0))
        except OSError:
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
