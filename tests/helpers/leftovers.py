"""What a sandboxed job may leave on the host, and which of it belongs to this test process.

Several test runs may share this machine (and its Docker engine), so checks are owner-scoped:
our containers carry our owner label, our cgroups are the ones Cgroup.create made in this
process, our job dirs and out-dir mounts carry our pid. See the `nothing_left_behind` fixture in
conftest.py, which both sandbox test files use.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from sandbox.backends.docker import OWNER_LABEL, owner_label, parse_owner_label
from sandbox.backends.process import SANDBOX_UID
from sandbox.backends.warm import WARM_DIR_KIND, WARM_LABEL, WARM_UID_MIN
from sandbox.backends.workdir import JOB_DIR_PREFIX, OUT_MOUNT_SOURCE, mounts

SANDBOX_UIDS = {SANDBOX_UID, 65534}  # the process backend's uid and the Docker backend's


def is_sandbox_uid(uid: int) -> bool:
    """A uid only sandboxed jobs run as: the fixed ones, or a warm pool's per-job range."""
    return uid in SANDBOX_UIDS or uid >= WARM_UID_MIN


def sandbox_processes() -> list[int]:
    """Every process on the host running as a sandbox uid, whoever started its job."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(ln for ln in status.read_text().splitlines() if ln.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if is_sandbox_uid(int(uid_line.split()[1])):
            pids.append(int(status.parent.name))
    return pids


def foreign_containers(client: Any) -> set[str]:
    """Ids of sandbox containers started by another process (a concurrent test run)."""
    found = client.containers.list(all=True, filters={"label": OWNER_LABEL})
    return {c.id for c in found if c.labels.get(OWNER_LABEL) != owner_label()}


def our_containers(client: Any) -> list[Any]:
    """Our containers, but for warm pools: those live as long as their backend, by design (the
    jobs inside them are checked by uid, and test_warm_pool_is_removed_on_close checks closing)."""
    found = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={owner_label()}"})
    return [c for c in found if WARM_LABEL not in c.labels]


def cgroup_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def our_sandbox_processes(client: Any, our_cgroups: list[str]) -> list[int]:
    """Sandbox-uid processes that are not provably another owner's: not in another owner's
    container, nor in a nasloop cgroup that this process did not make (a concurrent run's job)."""
    foreign = foreign_containers(client)
    found = []
    for pid in sandbox_processes():
        where = cgroup_of(pid)
        in_foreign_job = "nasloop-" in where and not any(name in where for name in our_cgroups)
        if not in_foreign_job and not any(cid in where for cid in foreign):
            found.append(pid)
    return found


def cgroups_named(names: list[str]) -> list[Path]:
    """The cgroups under /sys/fs/cgroup with one of these names. Walked with os.walk, which skips
    a directory that vanishes under it: a concurrent test process removes its own jobs' cgroups
    while we look (Path.glob would raise)."""
    wanted = set(names)
    found = []
    for parent, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [Path(parent, d) for d in dirs if d in wanted]
    return found


def our_job_dirs() -> list[Path]:
    """Job dirs this process made that are still there (the evaluator deletes each in `finally`)."""
    found = Path(tempfile.gettempdir()).glob(f"{JOB_DIR_PREFIX}{os.getpid()}-*")
    # a warm pool's dir lives as long as its backend (test_warm_backend checks it goes on close)
    return sorted(d for d in found if f"-{WARM_DIR_KIND}" not in d.name)


def our_out_mounts() -> list[str]:
    """Out-dir tmpfs mounts this process made that are still mounted."""
    return [target for source, target in mounts() if source == f"{OUT_MOUNT_SOURCE}{os.getpid()}"]


def orphaned_containers(client: Any) -> list[Any]:
    """Sandbox containers on this host whose owning process is gone."""
    host = socket.gethostname()
    found = []
    for c in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        owner = parse_owner_label(c.labels.get(OWNER_LABEL, ""))
        if owner and owner[0] == host and not Path(f"/proc/{owner[1]}").exists():
            found.append(c)
    return found
