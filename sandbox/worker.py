"""Warm sandbox worker: torch imported once per container, each candidate in a fresh process.

Runs as pid 1 of a long-lived container (see sandbox/backends/warm.py), as root inside it but with
only three capabilities: SETUID and SETGID (to drop each job to its own uid) and KILL (to clear a
job's processes). Like runner.py it is self-contained (stdlib + torch) and travels into the
container; it imports runner.py from its own directory, once, before any candidate exists.

Why: a fresh interpreter pays ~2 s to import torch and ~1 s more for torch._dynamo (which the
first lazy module or FLOP count pulls in) before a candidate's first step: about as long as a whole
one-epoch evaluation on a GPU. Here every job is an `os.fork()` of a process that already did
that work, and that has never touched CUDA or started a thread (both would make forking unsafe).

Each job's process, before it runs one line of the candidate: gets a new session; volunteers as
the first victim of the container's OOM killer (oom_score_adj 1000); takes rlimits on processes
(per uid, so per job), core dumps and file size; drops to the job's own uid, which has no
capabilities and cannot gain any (no_new_privs is set on the whole container); gets an empty
environment and a private 0700 scratch. It then runs runner.main() as a fresh interpreter would.
When it exits or its time is up, a helper with the job's uid kills every process of that uid in
the container (nothing of a job survives it), the worker copies out the two result files (sizes
capped), and a second helper deletes everything the uid owned in the scratch places.

Protocol (host side: sandbox/backends/warm.py), all through mounted directories:
  /pool/jobs/<n>/{config.json, candidate.py, request.json}   read-only here; request.json last
  /pool/status/<n>/{outcome.json, report.json, predictions.json, net.pt2}   root-only; outcome last
  /pool/status/ready                                           written once, when warm
"""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

JOBS = "/pool/jobs"
STATUS = "/pool/status"
DATA = "/data"
OUT = "/outs"  # a tmpfs of the container's; each job writes /outs/<n>
SCRATCH = "/tmp"  # a tmpfs too; each job gets /tmp/job-<n>
SHM = "/dev/shm"
LOG_TAIL_BYTES = 64 * 1024
# name -> size cap; net.pt2 is the exported net that sandbox/verify.py measures (hardware limits)
RESULT_FILES = {"report.json": 1 * 2**20, "predictions.json": 64 * 2**20, "net.pt2": 256 * 2**20}
POLL_S = 0.005
# The runner prints this right before importing the candidate (runner.CANDIDATE_MARKER); a job
# whose output never showed it failed in its setup, before any candidate code: the host then
# stops the run instead of charging the candidate. Watched here, on the pipe, where every byte
# passes: the candidate cannot take it back.
MARKER = b"[runner] importing the candidate"
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def warm_up() -> None:
    """Import what every job needs, without creating a thread or touching CUDA."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import runner  # noqa: F401  # imports torch
    import torch._dynamo  # what a lazy module or the FLOP count would import
    import torch.utils.flop_counter  # noqa: F401


def oom_kills() -> int:
    """How many processes the container's memory cgroup has OOM-killed so far (v2 or v1)."""
    for path in OOM_FILES:
        try:
            with open(path, encoding="ascii") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def as_job_user(uid: int, action: object, reaped: dict[int, int]) -> None:
    """Run `action()` in a forked helper with the job's uid, and wait for it.

    We are pid 1: every orphan of a job becomes our child. While the helper works we reap every
    child that ends (a zombie still counts for kill(-1), so the helper would never see the last
    of them otherwise) and keep each exit status in `reaped`.
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()  # type: ignore[operator]
            code = 0
        finally:
            os._exit(code)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if done == pid:
            return
        reaped[done] = status


def kill_all_of_this_uid() -> None:
    """kill(-1) reaches every process of our uid in the container's pid namespace but ourselves.

    Repeated until none is left: a fork bomb may fork between two rounds.
    """
    for _ in range(1000):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.002)


def remove_owned(n: int, uid: int) -> None:
    """Delete the job's out dir, its scratch, and anything else the uid left in tmpfs places."""
    for root in (OUT, SCRATCH, SHM):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, name)
            try:
                if os.lstat(path).st_uid != uid:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    for dirpath, dirnames, _ in os.walk(path):
                        for d in dirnames:  # a candidate may have chmod'ed its dirs to 000
                            os.chmod(os.path.join(dirpath, d), 0o700)
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                continue


def job_process(n: int, req: dict[str, object], log_fd: int) -> None:
    """The forked child: confine itself, become the job's user, run the runner. Never returns."""
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.setsid()
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
            f.write("1000")
        pids, fsize = int(req["pids"]), int(req["fsize_bytes"])  # type: ignore[call-overload]
        resource.setrlimit(resource.RLIMIT_NPROC, (pids, pids))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        uid = int(req["uid"])  # type: ignore[call-overload]
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        os.umask(0o022)
        out, scratch = f"{OUT}/{n}", f"{SCRATCH}/job-{n}"
        os.mkdir(out, 0o755)
        os.mkdir(scratch, 0o700)
        os.chdir(scratch)
        env = {k: str(v) for k, v in dict(req["env"]).items()}  # type: ignore[call-overload]
        os.environ.clear()
        os.environ.update(env, HOME=scratch, TMPDIR=scratch)
        import tempfile

        tempfile.tempdir = None  # computed again from TMPDIR
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        import runner

        # Look exactly like `python runner.py ...` to the candidate: same argv, same __main__.
        argv = ["--job", f"{JOBS}/{n}", "--data", DATA, "--out", out]
        sys.argv = [runner.__file__, *argv]
        sys.modules["__main__"] = runner
        runner.main(argv)
    except BaseException as exc:  # confinement failed: say so, never run the candidate
        os.write(2, f"[worker] job setup failed: {type(exc).__name__}: {exc}\n".encode())
    os._exit(1)


def run_job(n: int, req: dict[str, object]) -> dict[str, object]:
    uid = int(req["uid"])  # type: ignore[call-overload]
    timeout_s = float(req["timeout_s"])  # type: ignore[arg-type]
    read_fd, write_fd = os.pipe()
    kills_before = oom_kills()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        job_process(n, req, write_fd)
    os.close(write_fd)
    tail, status, timed_out, reached = bytearray(), None, False, False
    deadline = started + timeout_s
    pipe_open = True
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if pipe_open:
            ready, _, _ = select.select([read_fd], [], [], min(remaining, 0.05))
            if ready:
                chunk = os.read(read_fd, 65536)
                if chunk:
                    tail += chunk
                    reached = reached or MARKER in tail[-(len(chunk) + len(MARKER)) :]
                    del tail[:-LOG_TAIL_BYTES]
                else:
                    pipe_open = False  # every writer closed it; the child is about to exit
        else:
            time.sleep(min(remaining, POLL_S))
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
    reaped: dict[int, int] = {}
    as_job_user(uid, kill_all_of_this_uid, reaped)  # the child (if timed out), all it left
    if status is None:
        status = reaped[pid] if pid in reaped else os.waitpid(pid, 0)[1]
    os.set_blocking(read_fd, False)
    try:
        while chunk := os.read(read_fd, 65536):
            tail += chunk
            reached = reached or MARKER in tail[-(len(chunk) + len(MARKER)) :]
            del tail[:-LOG_TAIL_BYTES]
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise
    os.close(read_fd)
    seconds = time.monotonic() - started
    exit_code = os.waitstatus_to_exitcode(status)
    killed_by_oom = exit_code == -signal.SIGKILL and not timed_out and oom_kills() > kills_before
    collect(n)
    as_job_user(uid, lambda: remove_owned(n, uid), reaped)
    return {
        "exit_code": None if timed_out else exit_code,
        "timed_out": timed_out,
        "oom_killed": killed_by_oom,
        "log_tail": tail.decode("utf-8", errors="replace"),
        "seconds": seconds,
        "reached_candidate": reached,
    }


def collect(n: int) -> None:
    """Copy the job's result files, if present and not oversized, where only we can write."""
    dest = f"{STATUS}/{n}"
    os.makedirs(dest, exist_ok=True)
    for name, cap in RESULT_FILES.items():
        src = f"{OUT}/{n}/{name}"
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            data = os.read(fd, cap + 1)
        except OSError:
            continue
        finally:
            os.close(fd)
        if len(data) <= cap:
            write_atomic(f"{dest}/{name}", data)


def write_atomic(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def serve() -> None:
    warm_up()
    write_atomic(f"{STATUS}/ready", b"{}")
    print("[worker] warm", file=sys.stderr, flush=True)
    done: set[str] = set()
    while True:
        for name in sorted(os.listdir(JOBS)):
            if name in done or not os.path.exists(f"{JOBS}/{name}/request.json"):
                continue
            done.add(name)
            with open(f"{JOBS}/{name}/request.json", encoding="utf-8") as f:
                req = json.load(f)
            outcome = run_job(int(name), req)
            write_atomic(f"{STATUS}/{name}/outcome.json", json.dumps(outcome).encode())
        time.sleep(POLL_S)


if __name__ == "__main__":
    serve()
