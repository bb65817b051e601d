"""Per-job host resources: the job's temp dir, the tmpfs that bounds its out dir, and reaping.

The evaluator removes both in a `finally`; one killed with SIGKILL never gets there. So, like the
Docker backend's containers and the process backend's cgroups, each is named after the process that
made it, and the next evaluator on the host removes those whose owner is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

# A job dir is named "<prefix><pid>-<start>-<random>": the pid of the evaluator that made it and
# that process's start time (see owner_tag); "na" where /proc cannot tell the start time.
JOB_DIR_PREFIX = "nasloop-job-"
# Source name of the tmpfs mounted on a job's out dir, followed by the mounting process's pid.
OUT_MOUNT_SOURCE = "nasloop-out-"

_JOB_DIR_NAME = re.compile(rf"{re.escape(JOB_DIR_PREFIX)}(\d{{1,9}})-(\d+|na)-")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks after boot) of a process, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) may hold spaces and parentheses: count from the last ")".
    fields = text.rpartition(")")[2].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def let_others_read(root: Path) -> None:
    """Make a read-only input tree readable by the sandbox user, who owns none of it.

    Directories made with tempfile.mkdtemp() are 0700; inside the container that shows as
    "Permission denied" on /job/runner.py. Only adds o+r (and o+x on directories); write bits are
    never touched, and the mount is read-only anyway.
    """
    for path in [root, *root.rglob("*")]:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            want = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
            if st.st_mode & want != want:
                path.chmod(stat.S_IMODE(st.st_mode) | want)
        except OSError:  # not ours to change: the container will say what it cannot read
            continue


def owner_tag(pid: int | None = None) -> str:
    """The "<pid>-<start>" that job dir names carry, for a process (this one by default)."""
    pid = os.getpid() if pid is None else pid
    info = _proc_stat(pid)
    return f"{pid}-{info[1] if info else 'na'}"


def owner_alive(pid: int, start: str) -> bool:
    """Whether the process that named a job dir "<pid>-<start>" is still running.

    A pid alone is not enough: once the owner is gone the kernel hands its pid to new processes.
    The start time in the name tells the owner from a newcomer exactly; comparing the dir's mtime
    with the newcomer's start would depend on the wall clock (which may jump) and on /proc's coarse
    clock ticks. Where the start time is unknown, a live pid counts as the owner: a dir is only
    ever kept too long, never taken from a running job.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    info = _proc_stat(pid)
    if info is None or start == "na":
        return True
    state, started = info
    return started == start and state not in ("Z", "X")  # a zombie has stopped for good


def make_job_dir(root: Path | None = None, kind: str = "") -> Path:
    """A fresh private directory for one job (in `root`, else the temp dir), named after us.

    Job dirs of dead owners are reaped first, so a killed evaluator's files last only until the
    next job on the host starts. `kind` goes into the name (e.g. "warm-" for a warm pool's dir,
    which lives as long as its backend rather than one job).
    """
    reap_job_dirs(root)
    prefix = f"{JOB_DIR_PREFIX}{owner_tag()}-{kind}"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def remove_job_dir(work: Path) -> None:
    """Unmount the job's out-dir tmpfs (if any), then delete the whole directory."""
    unmount_under(work)
    shutil.rmtree(work, ignore_errors=True)


def reap_job_dirs(root: Path | None = None) -> list[Path]:
    """Remove our user's job dirs whose owner is gone, and anything mounted in them.

    Only directories owned by our uid: anyone can create a name in /tmp, and it is not for us to
    delete what another user made there. Returns what was removed.
    """
    base = Path(root if root is not None else tempfile.gettempdir())
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _JOB_DIR_NAME.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        if owner_alive(int(match[1]), match[2]):
            continue
        remove_job_dir(Path(entry.path))
        removed.append(Path(entry.path))
    return removed


def bound_out_dir(out_dir: Path, size_mb: int) -> bool:
    """Put a size-limited tmpfs on the job's out dir; True when it is mounted (root only).

    The out dir is the one host directory a candidate may write to: without a bound, a candidate
    writing in a loop fills the host's disk (the scratch and the logs are bounded; this is not,
    and an rlimit on file size bounds one file, not how many). Its pages are charged to the
    writer's memory cgroup, so the job's memory limit bounds it too. Where mounting is not
    possible (not root, not Linux), the out dir stays a plain directory.
    """
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    reap_out_mounts()
    options = f"size={max(size_mb, 16)}m,mode=0755,nosuid,nodev"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, f"{OUT_MOUNT_SOURCE}{os.getpid()}", str(out_dir)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def reap_out_mounts() -> None:
    """Unmount out-dir tmpfs mounts left by an evaluator killed before its `finally` ran.

    Each mount's source names the pid that made it; one whose process is gone is stale. (A mount
    whose pid was reused meanwhile goes with its job dir, in reap_job_dirs.)
    """
    for source, target in mounts():
        if not source.startswith(OUT_MOUNT_SOURCE):
            continue
        pid = source[len(OUT_MOUNT_SOURCE) :]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _unmount(target)


def unmount_under(path: Path) -> None:
    """Lazily unmount everything mounted at or below `path`, deepest first."""
    top = os.path.realpath(path)  # /proc lists canonical paths
    inside = [t for _, t in mounts() if t == top or t.startswith(top + "/")]
    for target in sorted(inside, key=len, reverse=True):
        _unmount(target)


def mounts() -> list[tuple[str, str]]:
    """(source, target) of every mount this process sees; empty where /proc has no such list."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2:
            found.append((_unescape(fields[0]), _unescape(fields[1])))
    return found


def _unescape(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _unmount(target: str) -> None:
    # -l: detach now even if a straggler still has a file open there; freed when it lets go.
    subprocess.run(["umount", "-l", target], capture_output=True, check=False)
