"""What every backend receives and returns.

A job is three host directories: `job_dir` (runner.py, candidate.py, config.json; read-only inside),
`data_dir` (the prepared dataset's public part; read-only inside) and `out_dir` (the only writable
place besides a private scratch). Inside the sandbox they appear as JOB_MOUNT, DATA_MOUNT and
OUT_MOUNT where the backend can remap paths; the process backend without bubblewrap uses the host
paths themselves, so the runner is always told its paths on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

JOB_MOUNT = "/job"
DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
SCRATCH_MOUNT = "/tmp"

# Bytes of combined stdout/stderr kept per job: the tail is what explains a failure, and a
# candidate that floods its output must not flood the host's memory.
LOG_TAIL_BYTES = 64 * 1024


class BackendUnavailable(RuntimeError):
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


def runner_argv(python: str, job: str, data: str, out: str) -> list[str]:
    """The command every backend runs, given where the three directories appear inside."""
    return [python, "-I", "-B", f"{job}/runner.py", "--job", job, "--data", data, "--out", out]


class Backend(Protocol):
    name: str

    def run(self, job: Job) -> RunOutcome:
        """Run the job to completion or to its limits; leave nothing running behind."""
        ...
