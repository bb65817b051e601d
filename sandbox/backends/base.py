"""What every backend receives and returns.

A job is three host directories: `job_dir` (runner.py, candidate.py, config.json; read-only inside),
`data_dir` (the prepared dataset's public part; read-only inside) and `out_dir` (the only writable
place besides a private scratch). Inside the sandbox they appear as JOB_MOUNT, DATA_MOUNT and
OUT_MOUNT where the backend can remap paths; the process backend without bubblewrap uses the host
paths themselves, so the runner is always told its paths on the command line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbox.faults import InfrastructureFault

JOB_MOUNT = "/job"
DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
SCRATCH_MOUNT = "/tmp"

# Bytes of combined stdout/stderr kept per job: the tail is what explains a failure, and a
# candidate that floods its output must not flood the host's memory.
LOG_TAIL_BYTES = 64 * 1024


# The runner prints this line, alone, right before it imports the candidate (the runner keeps its
# own copy: it imports nothing of ours). Backends watch the whole output stream for it:
# a job that ends without it never reached candidate code, so its failure is ours. A stream and
# not a file, because a candidate can delete a file but cannot take back what was already read.
CANDIDATE_MARKER = "[runner] importing the candidate"


class BackendUnavailable(InfrastructureFault):
    """The backend cannot run here (no engine, no image, ...); the message names the fix."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 1800.0  # the reference protocol's 30 minutes per candidate
    memory_mb: int = 8192
    pids: int = 256
    scratch_mb: int = 512
    gpus: tuple[str, ...] = ()  # device ids given to the job; empty means CPU only


@dataclass(frozen=True)
class Job:
    job_dir: Path
    data_dir: Path
    out_dir: Path
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class RunOutcome:
    """What happened to the sandboxed process, before anything it wrote is trusted."""

    exit_code: int | None  # None when the process had to be killed by us
    timed_out: bool
    oom_killed: bool
    log_tail: str
    seconds: float
    # the job's peak memory as the host read it from the job's cgroup; None where it cannot
    peak_memory_mb: float | None = None
    # Whether the runner printed CANDIDATE_MARKER: False means the job failed before any candidate
    # code ran (None: the backend cannot tell, and the evaluator treats the job as the candidate's).
    reached_candidate: bool | None = None


class MarkerWatch:
    """Watches an output stream, chunk by chunk, for CANDIDATE_MARKER (split chunks included)."""

    def __init__(self, marker: str = CANDIDATE_MARKER) -> None:
        self.marker = marker.encode()
        self.seen = False
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        if self.seen or not chunk:
            return
        window = self._carry + chunk
        self.seen = self.marker in window
        self._carry = window[-(len(self.marker) - 1) :]


class MarkerFollower(threading.Thread):
    """Follows a job's output stream from its first byte until CANDIDATE_MARKER shows.

    For backends whose stored log keeps only a tail (Docker's: 2 MiB, which a candidate could
    fill): the marker is read long before any candidate code exists. Only the runner's own lines
    come before it, so this reads little. `open_stream` is called again after an error (a read
    timeout while the runner starts); the thread ends at the marker, the stream's end, or stop.
    """

    def __init__(self, open_stream: Callable[[], Iterable[bytes]]) -> None:
        super().__init__(daemon=True)
        self.open_stream = open_stream
        self.watch = MarkerWatch()
        self.stop = threading.Event()

    def run(self) -> None:
        while not (self.watch.seen or self.stop.is_set()):
            try:
                stream: Any = self.open_stream()
                try:
                    for chunk in stream:
                        self.watch.feed(chunk)
                        if self.watch.seen:
                            return
                    return  # the stream ended: so did the job
                finally:
                    stream.close()
            except Exception:  # a read timeout, or the engine went away
                self.stop.wait(0.5)

    def reached(self, log_tail: str, grace_s: float = 10.0) -> bool | None:
        """Whether the job reached the candidate; None while the stream is still being read."""
        self.join(timeout=grace_s)
        if self.watch.seen or CANDIDATE_MARKER in log_tail:
            return True
        return None if self.is_alive() else False


def runner_argv(python: str, job: str, data: str, out: str) -> list[str]:
    """The command every backend runs, given where the three directories appear inside."""
    return [python, "-I", "-B", f"{job}/runner.py", "--job", job, "--data", data, "--out", out]


class Backend(Protocol):
    name: str

    def run(self, job: Job) -> RunOutcome:
        """Run the job to completion or to its limits; leave nothing running behind."""
        ...
