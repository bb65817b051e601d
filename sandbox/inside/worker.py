"""Warm sandbox worker: torch imported once per container, each candidate in a fresh process.

Runs as pid 1 of a long-lived container (the warm Docker backend's), as root inside it but with
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
environment and a private out dir and scratch under names drawn at random for this job (no
earlier job can know them, and mkdir fails rather than reuse a name that exists). It then runs
runner.main() as a fresh interpreter would.

A job may attack the ones after it, so after every job the worker kills every other process
of the container, deletes what the job left, and proves that the container is back to its state
after warm-up (the clearing's proof). If it cannot, the outcome says `clean: false` with the
reasons and the worker exits after reporting: the host retires the container and starts a fresh
one for the next job. The job that just ran keeps its result: it started in a container proven
clean.

A failure to set a job up (before the candidate's first line) is reported apart from anything the
candidate can write: through a pipe that the job process closes just before it hands over to the
runner, so the host can treat it as an infrastructure fault, never as the candidate's result.

Protocol (host side: the warm Docker backend), all through mounted directories:
  /pool/jobs/<n>/{config.json, candidate.py, request.json}   read-only here; request.json last
  /pool/status/<n>/{outcome.json, report.json, predictions.json, net.pt2}   root-only; outcome last
  /pool/status/ready                                           written once, when warm
"""

from __future__ import annotations

import errno
import json
import os
import resource
import secrets
import select
import signal
import sys
import time

JOBS = "/pool/jobs"
STATUS = "/pool/status"
DATA = "/data"
OUT = "/outs"  # a tmpfs of the container's; each job writes /outs/<random>
SCRATCH = "/tmp"  # a tmpfs too; each job gets /tmp/job-<random>
LOG_TAIL_BYTES = 64 * 1024
# name -> size cap; net.pt2 is the exported net that the verifier measures (hardware limits)
RESULT_FILES = {"report.json": 1 * 2**20, "predictions.json": 64 * 2**20, "net.pt2": 256 * 2**20}
POLL_S = 0.005
# The runner prints this right before importing the candidate (runner.CANDIDATE_MARKER); a job
# whose output never showed it failed in its setup, before any candidate code: the host then
# stops the run instead of charging the candidate. Watched here, on the pipe, where every byte
# passes: the candidate cannot take it back.
MARKER = b"[runner] importing the candidate"
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
CLEAR_DEADLINE_S = 10.0  # a process in uninterruptible sleep may take a moment to die


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # runner.py and clearing.py
from clearing import (  # noqa: E402
    baseline,
    dirt,
    kill_everything,
    read_first,
    remove_owned,
    writable_places,
)


def warm_up() -> None:
    """Import what every job needs, without creating a thread or touching CUDA."""
    import runner  # noqa: F401  # imports torch
    import torch._dynamo  # what a lazy module or the FLOP count would import
    import torch.utils.flop_counter  # noqa: F401


def oom_kills() -> int:
    """How many processes the container's memory cgroup has OOM-killed so far (v2 or v1)."""
    for line in (read_first(OOM_FILES) or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def as_job_user(uid: int, action: object, deadline: float) -> None:
    """Run `action()` in a forked helper with the job's uid; kill it at the deadline.

    Only called once nothing of that uid is alive, so no process can race the helper.
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
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            kill_everything(deadline + 1.0)
            return
        time.sleep(POLL_S)


def job_process(req: dict[str, object], out: str, scratch: str, log_fd: int, setup_fd: int) -> None:
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
        os.mkdir(out, 0o755)  # mkdir never reuses: a name that exists is an error
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
        argv = ["--job", f"{JOBS}/{req['n']}", "--data", DATA, "--out", out]
        sys.argv = [runner.__file__, *argv]
        sys.modules["__main__"] = runner
        os.close(setup_fd)  # set up: from here on, what fails is the run, not the worker
    except BaseException as exc:  # confinement failed: say so, never run the candidate
        os.write(setup_fd, f"{type(exc).__name__}: {exc}"[:2000].encode())
        os._exit(1)
    try:
        runner.main(argv)  # ends with os._exit
    except BaseException:  # the runner itself failed (say, a full out dir): never return to serve()
        import traceback

        traceback.print_exc()
    os._exit(1)


def read_all(fd: int, into: bytearray, keep: int, marker: bytes = b"") -> bool:
    """Append what a pipe holds now (its writers may all be gone) and keep the last bytes;
    whether `marker` passed by in what was read."""
    seen = False
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 65536):
            into += chunk
            seen = seen or (bool(marker) and marker in into[-(len(chunk) + len(marker)) :])
            del into[:-keep]
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise
    os.close(fd)
    return seen


def run_job(
    n: int, req: dict[str, object], places: list[str], base: dict[str, object]
) -> dict[str, object]:
    uid = int(req["uid"])  # type: ignore[call-overload]
    timeout_s = float(req["timeout_s"])  # type: ignore[arg-type]
    token = secrets.token_hex(16)  # no earlier job can know it, nor create it in advance
    out, scratch = f"{OUT}/{token}", f"{SCRATCH}/job-{token}"
    read_fd, write_fd = os.pipe()
    setup_read, setup_write = os.pipe()
    kills_before = oom_kills()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.close(setup_read)
        job_process({**req, "n": n}, out, scratch, write_fd, setup_write)
    os.close(write_fd)
    os.close(setup_write)
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
    seconds = time.monotonic() - started
    # Clear: nothing of the job may run on (the child too, if it timed out), then its files.
    clear_started = time.monotonic()
    reaped = kill_everything(clear_started + CLEAR_DEADLINE_S)
    if status is None:
        status = reaped.get(pid)
    reached = read_all(read_fd, tail, LOG_TAIL_BYTES, MARKER) or reached
    setup_failure = bytearray()
    read_all(setup_read, setup_failure, 4000)
    killed_by_oom = oom_kills() > kills_before and not timed_out
    collect(n, out)
    as_job_user(uid, lambda: remove_owned(uid, places), clear_started + CLEAR_DEADLINE_S)
    cleared = time.monotonic()
    try:
        found = dirt(places, base) if req.get("prove_clean", True) else []
    except OSError as exc:  # a place we cannot even look at is not a clean one
        found = [f"could not check: {exc}"]
    exit_code = None if timed_out or status is None else os.waitstatus_to_exitcode(status)
    return {
        "exit_code": exit_code,
        "timed_out": timed_out,
        "oom_killed": killed_by_oom and exit_code == -signal.SIGKILL,
        "log_tail": tail.decode("utf-8", errors="replace"),
        "seconds": seconds,
        "reached_candidate": reached,
        "setup_failed": setup_failure.decode("utf-8", errors="replace") or None,
        "clean": not found,
        "dirt": found,
        "clear_s": cleared - clear_started,
        "prove_s": time.monotonic() - cleared,
    }


def collect(n: int, out: str) -> None:
    """Copy the job's result files, if present and not oversized, where only we can write.

    Nothing of the job runs any more, so the files cannot change under us.
    """
    dest = f"{STATUS}/{n}"
    os.makedirs(dest, exist_ok=True)
    for name, cap in RESULT_FILES.items():
        try:
            fd = os.open(f"{out}/{name}", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
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
    places = writable_places()
    base = baseline(places)
    write_atomic(f"{STATUS}/ready", json.dumps({"places": places, "baseline": base}).encode())
    print(
        f"[worker] warm; cleared after every job: {', '.join(places)}", file=sys.stderr, flush=True
    )
    done: set[str] = set()
    while True:
        for name in sorted(os.listdir(JOBS)):
            if name in done or not os.path.exists(f"{JOBS}/{name}/request.json"):
                continue
            done.add(name)
            with open(f"{JOBS}/{name}/request.json", encoding="utf-8") as f:
                req = json.load(f)
            outcome = run_job(int(name), req, places, base)
            write_atomic(f"{STATUS}/{name}/outcome.json", json.dumps(outcome).encode())
            if not outcome["clean"]:
                # Not provably clean: serve no further job. The host starts a fresh container.
                print(f"[worker] not clean after job {name}: {outcome['dirt']}", file=sys.stderr)
                sys.exit(3)
        time.sleep(POLL_S)


if __name__ == "__main__":
    serve()
