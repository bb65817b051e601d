"""After each warm-worker job: clear the container, and prove it is as it was after warm-up.

Runs inside the warm container, imported by the warm worker (pid 1, root with only SETUID, SETGID
and KILL); like it, self-contained (standard library only). A job may attack the ones after it,
so nothing it leaves is trusted to be harmless: everything goes, then the worker checks that it
has, against a baseline taken after warm-up, before the next job may start.

  - processes: pid 1 calls kill(-1, SIGKILL) (see kill_everything) until /proc lists nothing but
    itself; the pids cgroup's count, the kernel's own, must agree;
  - files: every mount a job's uid can write to (world-writable tmpfs and mqueue roots, found
    at warm-up) must be empty and use no more blocks and inodes than at first; the job's
    leftovers are deleted by a helper with the job's uid, started once nothing else of that uid
    is alive, so nothing can race it;
  - SysV IPC: no shared memory segment, semaphore set or message queue may remain in the
    container's IPC namespace (the helper removes the ones the job created);
  - memory: anonymous and shared memory charged to the container back within MEMORY_SLACK_MB of
    the baseline (page cache is left out: reclaimable, and mostly the dataset the next job
    reads anyway).

Root here cannot override file modes (no CAP_DAC_OVERRIDE), which is why deletion runs as the
files' owner; anything that is not the job's (there should be nothing else) stays and fails the
proof, and the worker then retires the container rather than guess.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import time

PIDS_FILES = ("/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids/pids.current")
MEMORY_STAT_FILES = ("/sys/fs/cgroup/memory.stat", "/sys/fs/cgroup/memory/memory.stat")
# Memory that only a live process or a leftover object holds (v1 names, then v2).
HELD_MEMORY = (("total_rss", "total_shmem"), ("anon", "shmem"))
MEMORY_SLACK_MB = 64  # the worker's own heap may grow a little between two jobs
WRITABLE_FS = ("tmpfs", "mqueue")  # the kinds of mount a job's uid could write to at all
SYSV_IPC = {"shm": "shmid", "sem": "semid", "msg": "msqid"}  # /proc/sysvipc file -> id column
IPC_RMID = 0


def read_first(paths: tuple[str, ...]) -> str | None:
    for path in paths:
        try:
            with open(path, encoding="ascii") as f:
                return f.read()
        except OSError:
            continue
    return None


def held_memory() -> int | None:
    """Bytes of anonymous and shared memory charged to the container (None: cannot tell)."""
    fields = dict(line.split(" ", 1) for line in (read_first(MEMORY_STAT_FILES) or "").splitlines())
    for names in HELD_MEMORY:
        if all(name in fields for name in names):
            return sum(int(fields[name]) for name in names)
    return None


def task_count() -> int | None:
    """Tasks in the container's pids cgroup: the kernel's own count, besides /proc's listing."""
    text = read_first(PIDS_FILES)
    return int(text) if text and text.strip().isdigit() else None


def other_processes() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and p != "1"]


def writable_places() -> list[str]:
    """Every mount a job's uid can create files in: world-writable tmpfs and mqueue roots.

    Found rather than listed, so that a place added to the container later is cleared too.
    """
    places = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            _, target, fstype, options, *_ = line.split()
            rw = fstype in WRITABLE_FS and "rw" in options.split(",")
            mode = os.stat(target).st_mode
            if rw and stat.S_ISDIR(mode) and mode & stat.S_IWOTH:  # not /dev/null over a file
                places.append(target)
    return places


def usage(place: str) -> list[int]:
    """Blocks and inodes in use on a place's filesystem."""
    st = os.statvfs(place)
    return [st.f_blocks - st.f_bfree, st.f_files - st.f_ffree]


def ipc_objects() -> list[tuple[str, int, int, int]]:
    """(kind, id, owner uid, creator uid) of every SysV IPC object in our IPC namespace."""
    found = []
    for kind, id_column in SYSV_IPC.items():
        try:
            with open(f"/proc/sysvipc/{kind}", encoding="ascii") as f:
                header, *rows = f.read().splitlines()
        except (OSError, ValueError):
            continue
        columns = header.split()
        at = {name: columns.index(name) for name in (id_column, "uid", "cuid")}
        for row in rows:
            v = row.split()
            found.append((kind, int(v[at[id_column]]), int(v[at["uid"]]), int(v[at["cuid"]])))
    return found


def baseline(places: list[str]) -> dict[str, object]:
    """The container's state after warm-up: what every job must leave it in.

    The worker's own warm-up may have left entries (torch's cache dir in /tmp, the worker's,
    not writable by a job): they are part of the baseline, by name and by usage.
    """
    return {
        "places": {place: usage(place) for place in places},
        "entries": {place: sorted(os.listdir(place)) for place in places},
        "tasks": task_count(),
        "memory": held_memory(),
    }


def dirt(places: list[str], base: dict[str, object]) -> list[str]:
    """What differs from the baseline; empty when the container is as clean as after warm-up."""
    found = []
    if left := other_processes():
        found.append(f"processes still running: {left[:5]}")
    tasks, base_tasks = task_count(), base["tasks"]
    if isinstance(tasks, int) and isinstance(base_tasks, int) and tasks > base_tasks:
        found.append(f"{tasks} tasks in the pids cgroup, {base_tasks} after warm-up")
    base_usage: dict[str, list[int]] = base["places"]  # type: ignore[assignment]
    base_entries: dict[str, list[str]] = base["entries"]  # type: ignore[assignment]
    for place in places:
        names = sorted(set(os.listdir(place)) - set(base_entries[place]))
        if names:
            found.append(f"{place} still holds {names[:3]}")
        elif usage(place) != base_usage[place]:
            found.append(f"{place} uses {usage(place)} blocks/inodes, {base_usage[place]} at first")
    if objects := ipc_objects():
        found.append(f"SysV IPC objects left: {objects[:3]}")
    memory, base_memory = held_memory(), base["memory"]
    if isinstance(memory, int) and isinstance(base_memory, int):
        limit = base_memory + MEMORY_SLACK_MB * 2**20
        if memory > limit:
            found.append(f"{memory >> 20} MiB held, {base_memory >> 20} MiB after warm-up")
    return found


def kill_everything(deadline: float) -> dict[int, int]:
    """SIGKILL every process of the container but us, until none is left; their exit statuses.

    We are pid 1, root with CAP_KILL: kill(-1) reaches all other processes of our pid namespace
    in one pass that holds the kernel's task list, and a process that has a SIGKILL pending
    cannot fork. No process of a job can escape it, delay it or kill us first. Orphans become
    our children, so we reap them all; a zombie still shows in /proc until we do.
    """
    reaped: dict[int, int] = {}
    while True:
        with contextlib.suppress(ProcessLookupError):  # none left: nothing to signal
            os.kill(-1, signal.SIGKILL)
        while True:
            try:
                done, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not done:
                break
            reaped[done] = status
        if not other_processes() or time.monotonic() > deadline:
            return reaped
        time.sleep(0.001)


def remove_tree(top: str) -> None:
    """Delete a file or a whole tree, whatever modes its owner (we) gave it, without recursion."""
    stack = [top]
    while stack:
        path = stack[-1]
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            stack.pop()
            continue
        os.chmod(path, 0o700)  # a job may have made its dirs 000
        if children := os.listdir(path):
            stack.extend(os.path.join(path, c) for c in children)
        else:
            os.rmdir(path)
            stack.pop()


def remove_owned(uid: int, places: list[str]) -> None:
    """Delete what the uid left in the writable places, and its SysV IPC objects."""
    for place in places:
        for name in os.listdir(place):
            path = os.path.join(place, name)
            try:
                if os.lstat(path).st_uid == uid:
                    remove_tree(path)
            except OSError:
                continue  # what stays is found by dirt(), and the container retired
    libc = ctypes.CDLL(None, use_errno=True)
    remove = {
        "shm": lambda i: libc.shmctl(i, IPC_RMID, None),
        "sem": lambda i: libc.semctl(i, 0, IPC_RMID),
        "msg": lambda i: libc.msgctl(i, IPC_RMID, None),
    }
    for kind, ipc_id, owner, creator in ipc_objects():
        if uid in (owner, creator):  # the owner may be given away; the creator stays
            remove[kind](ipc_id)
