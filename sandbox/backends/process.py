"""The process backend: a job as a local process tree, for machines without a Docker engine.

Isolation, strongest first, depending on what the machine allows:
- bubblewrap (`bwrap`): new network, pid, ipc and uts namespaces (no network at all, nothing of the
  host's processes visible), a fresh root holding only /usr, the Python prefix, the job, the data
  (all read-only) and a writable out dir, a size-limited private /tmp; the tree dies with us.
- as root: a dedicated non-root uid for the candidate (`setpriv`, all capabilities dropped), and a
  cgroup with hard memory and process limits that is also how we kill every last process.
- always: its own session, a scrubbed environment (no host variables, so no API keys), rlimits on
  processes, core dumps and file size, and a wall-time limit that kills the whole tree.
`isolation()` says which of these hold; `make_backend` prints it on the first line of a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from sandbox.backends.base import (
    DATA_MOUNT,
    JOB_MOUNT,
    LOG_TAIL_BYTES,
    OUT_MOUNT,
    SCRATCH_MOUNT,
    BackendUnavailable,
    Job,
    MarkerWatch,
    RunOutcome,
    runner_argv,
)
from sandbox.backends.cgroup import Cgroup, remove_empty_groups

SANDBOX_UID = 61000  # a uid of its own: RLIMIT_NPROC counts per uid, and nothing else runs as it


def sandbox_env(home: str, threads: int | None = None) -> dict[str, str]:
    """The whole environment a candidate gets: nothing is inherited from the host."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLCONFIGDIR": home,
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def user_python() -> str:
    """The interpreter the user runs nasloop with, as a path that keeps its environment.

    A virtualenv's `bin/python` is usually a link to the base interpreter, and Python finds the
    venv (and its packages: torch) from the path it was started by, through the pyvenv.cfg next
    to it. Resolving the link would start the base interpreter, which may have no torch at all.
    """
    exe = os.path.abspath(sys.executable)
    return exe if sys.prefix != sys.base_prefix else os.path.realpath(exe)


def python_prefixes() -> list[str]:
    """Host directories the interpreter and its packages live in, outside /usr.

    Each as written and resolved: a venv is entered by its own path, the kernel follows links.
    """
    import torch

    paths = {sys.base_prefix, sys.prefix, str(Path(torch.__file__).parent.parent)}
    real = {os.path.abspath(p) for p in paths} | {os.path.realpath(p) for p in paths}
    # keep only outermost directories, and nothing already under /usr
    kept = sorted(p for p in real if not p.startswith("/usr/"))
    return [p for p in kept if not any(p != q and p.startswith(q + "/") for q in kept)]


class TailReader(threading.Thread):
    """Drains a pipe to EOF, keeping only the last `limit` bytes (a flood costs nothing)."""

    def __init__(self, stream: IO[bytes], limit: int = LOG_TAIL_BYTES) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit, self.buf = stream, limit, bytearray()
        self.marker = MarkerWatch()  # every byte passes here, the tail keeps only the last

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            self.marker.feed(chunk)
            self.buf += chunk
            if len(self.buf) > 2 * self.limit:
                del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        return bytes(self.buf[-self.limit :]).decode("utf-8", errors="replace")


class ProcessBackend:
    name = "process"

    def __init__(self, uid: int = SANDBOX_UID, use_bwrap: bool | None = None) -> None:
        self.uid = uid
        self.bwrap = shutil.which("bwrap") if use_bwrap is not False else None
        if use_bwrap and not self.bwrap:
            raise BackendUnavailable("bubblewrap not found: apt-get install bubblewrap")
        self.root = os.geteuid() == 0
        if self.root:
            remove_empty_groups()
        self.python = user_python()
        if self.root and not self.bwrap:
            # Dropping to a sandbox uid is only useful if that uid can still reach Python.
            blocked = _untraversable(self.python)
            if blocked:
                raise BackendUnavailable(
                    f"the process sandbox runs candidates as uid {uid}, which cannot enter "
                    f"{blocked}: apt-get install bubblewrap, or use a Python outside it"
                )

    def isolation(self) -> str:
        parts = ["bubblewrap (no network, read-only root)" if self.bwrap else "NO namespaces"]
        parts.append(f"uid {self.uid}" if self.root else "your own uid")
        parts.append("cgroup limits" if self.root else "rlimits only")
        return ", ".join(parts)

    def fresh_job_backend(self) -> ProcessBackend:
        """Where a one-off job runs its own runner.py in a fresh sandbox: here, as every job."""
        return self

    def run(self, job: Job) -> RunOutcome:
        limits = job.limits
        for d in (job.job_dir, job.data_dir, job.out_dir):
            if not d.is_dir():
                raise BackendUnavailable(f"job directory missing: {d}")
        if self.root:
            os.chown(job.out_dir, self.uid, self.uid)
        else:
            job.out_dir.chmod(0o777)
        cgroup = Cgroup.create(limits.memory_mb, limits.pids) if self.root else None
        argv = self._argv(job, cgroup)
        scratch = SCRATCH_MOUNT if self.bwrap else str(job.out_dir)
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=sandbox_env(scratch),
            cwd=str(job.out_dir),
            start_new_session=True,
            close_fds=True,
        )
        assert proc.stdout is not None
        reader = TailReader(proc.stdout)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self._kill_tree(proc, cgroup)
            reader.join(timeout=5)
            proc.stdout.close()
        oom = bool(cgroup and cgroup.oom_killed())
        peak_mb = cgroup.peak_memory_mb() if cgroup else None
        if cgroup:
            cgroup.remove()
        return RunOutcome(
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
            oom_killed=oom,
            log_tail=reader.text(),
            seconds=time.monotonic() - started,
            peak_memory_mb=peak_mb,
            reached_candidate=reader.marker.seen,
        )

    def _kill_tree(self, proc: subprocess.Popen[bytes], cgroup: Cgroup | None) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if cgroup:
            cgroup.kill_all()
        proc.wait()

    def _argv(self, job: Job, cgroup: Cgroup | None) -> list[str]:
        limits = job.limits
        fsize = max(limits.scratch_mb, 256) * 2**20
        prlimit = ["prlimit", "--core=0", f"--fsize={fsize}"]
        if cgroup is None:
            # RLIMIT_NPROC counts every process of the uid on the host, so two jobs at once share
            # it (one job's fork bomb starves the other): only a fallback when no cgroup's
            # per-job pids.max holds.
            prlimit.append(f"--nproc={limits.pids}")
            if not limits.gpus:
                # No cgroup: bound the address space instead (too coarse for CUDA, fine on CPU).
                prlimit.append(f"--as={limits.memory_mb * 2**20}")
        prlimit.append("--")
        drop = []
        if self.root:
            drop = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        if self.bwrap:
            inner = runner_argv(self.python, JOB_MOUNT, DATA_MOUNT, OUT_MOUNT)
            command = [*prlimit, *self._bwrap_argv(job), *drop, *inner]
        else:
            inner = runner_argv(self.python, str(job.job_dir), str(job.data_dir), str(job.out_dir))
            command = [*prlimit, *drop, *inner]
        if cgroup:
            # Join the cgroup(s) first, then become the job: nothing it forks can be outside.
            join = " ".join(f'echo $$ > "{f}" &&' for f in cgroup.procs_files)
            command = ["/bin/sh", "-c", f'{join} exec "$@"', "sh", *command]
        return command

    def _bwrap_argv(self, job: Job) -> list[str]:
        assert self.bwrap
        limits = job.limits
        args = [self.bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if not self.root:
            args.append("--unshare-user")
        args += ["--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.islink(f"/{link}"):
                args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        if os.path.exists("/etc/ld.so.cache"):
            args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        args += ["--ro-bind", str(job.job_dir), JOB_MOUNT]
        args += ["--ro-bind", str(job.data_dir), DATA_MOUNT]
        args += ["--bind", str(job.out_dir), OUT_MOUNT]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += [
            "--perms",
            "1777",
            "--size",
            str(limits.scratch_mb * 2**20),
            "--tmpfs",
            SCRATCH_MOUNT,
        ]
        # After the private /tmp, so that a Python living under /tmp (a throwaway venv) is
        # mounted on top of it instead of hidden by it.
        made: set[str] = {SCRATCH_MOUNT}
        for prefix in python_prefixes():
            parts = Path(prefix).parts
            for i in range(2, len(parts)):  # world-traversable parents (e.g. /root is 0700)
                parent = str(Path(*parts[:i]))
                if parent not in made:
                    args += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            args += ["--ro-bind", prefix, prefix]
        args += ["--chdir", SCRATCH_MOUNT, "--"]
        return args


def _untraversable(path: str) -> str | None:
    """The first directory on the way to `path` that other users cannot enter, if any."""
    current = Path("/")
    for part in Path(path).parts[1:-1]:
        current = current / part
        if not current.stat().st_mode & stat.S_IXOTH:
            return str(current)
    return None
