"""Sandbox jobs in tests: a minimal module, training settings and limits, the candidate programs,
and `ScriptedBackend`, a backend that runs nothing and leaves what a test scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from sandbox.backends.base import Job, Limits, RunOutcome
from tests.helpers.paths import CANDIDATES

NET = "import torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n"  # defines Net; never trained
PRECHECKED = {"syntax", "no_net", "no_code"}  # kinds decided on the host, without a sandbox

# Enough steps for a small CNN to learn something on 3,600 MNIST-5k images in a few seconds.
TRAIN = {"batch_size": 32, "lr": 0.01, "threads": 2}
QUICK = {**TRAIN, "train_limit": 512}  # a small training subset: about containment, not learning
QUICKER = {**TRAIN, "train_limit": 256}


def limits(timeout_s: float = 90, memory_mb: int = 2048, pids: int = 128) -> Limits:
    """A real job's limits: these defaults fit a small CNN on MNIST-5k on a 2-core machine."""
    return Limits(timeout_s=timeout_s, memory_mb=memory_mb, pids=pids, scratch_mb=64)


LIMITS = limits()


# The sandbox backends, the default first: a search runs in one warm container (Docker), unless
# told to start a container per job or to use the process backend (no engine)
BACKENDS = ("docker-warm", "docker", "process")
# A test that is about the program, not the sandbox around it: run on the default backend only
on_the_default_backend = pytest.mark.parametrize("backend", BACKENDS[:1], indirect=True)


# A fork bomb's 64 spinning processes starve the whole machine for their time limit (no CPU cap
# on a candidate: it owns the GPU box), and a Ray cluster starting meanwhile times out: both are
# in this pytest-xdist group, which runs its tests one after another on one worker
MACHINE_WIDE = pytest.mark.xdist_group("machine-wide")


def across_backends(classes: Mapping[str, str]) -> list[Any]:
    """`(case, backend)` parameters for a corpus of cases, each mapped to its attack class: every
    case on the default backend, and on each other backend the first case of every class.

    The cases of one class reach the sandbox's same line of defence (a loop at import or in
    forward both meet the wall-time kill), so the other backends need one of each to show that
    their defence holds; the default backend, which users run, meets the whole corpus."""
    first: dict[str, str] = {}
    for case, kind in classes.items():
        first.setdefault(kind, case)
    return [
        pytest.param(case, backend, id=f"{backend}-{case}")
        for backend in BACKENDS
        for case, kind in classes.items()
        if backend == BACKENDS[0] or first[kind] == case
    ]


def source(name: str) -> str:
    """A program of tests/candidates (hostile, broken or honest), by its file's stem."""
    return (CANDIDATES / f"{name}.py").read_text()


class ScriptedBackend:
    """A backend that runs nothing: `act(job)` writes what a runner (or a hostile candidate)
    would have left in the job's out dir and returns the job's outcome, or None for `outcome`
    (by default a clean exit whose log ends in "last words"). `jobs` is every job it was given."""

    def __init__(
        self,
        act: Callable[[Job], RunOutcome | None] | None = None,
        *,
        outcome: RunOutcome | None = None,
        name: str = "scripted",
    ) -> None:
        self.act, self.name = act, name
        self.outcome = outcome or RunOutcome(0, False, False, "last words", 1.0)
        self.jobs: list[Job] = []

    def run(self, job: Job) -> RunOutcome:
        self.jobs.append(job)
        done = self.act(job) if self.act is not None else None
        return self.outcome if done is None else done


def outcome(code: int | None = 0, timed_out: bool = False, oom: bool = False) -> RunOutcome:
    return RunOutcome(code, timed_out, oom, log_tail="last words", seconds=1.0)


def writes(
    report: dict[str, object] | None, predictions: object = None, code: int = 0
) -> Callable[[Job], RunOutcome]:
    """A job whose runner left `report` and `predictions` (None: no such file) and exited `code`;
    it checks that the evaluator handed the job its candidate and the runner."""

    def act(job: Job) -> RunOutcome:
        assert (job.job_dir / "candidate.py").is_file() and (job.job_dir / "runner.py").is_file()
        if report is not None:
            (job.out_dir / "report.json").write_text(json.dumps(report))
        if predictions is not None:
            (job.out_dir / "predictions.json").write_text(json.dumps(predictions))
        return outcome(code)

    return act


OK_REPORT = {"status": "ok", "params": 10, "flops": 20, "timings": {"train_s": 1.5}}
