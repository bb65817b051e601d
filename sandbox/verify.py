"""Metrics the candidate cannot forge: the trained net measured outside the candidate's process.

Threat model: the training process is the candidate's, so everything it writes (report, weights,
the exported program) is its choice. The runner exports the trained net (`net.pt2`, see
runner.export_net); here a fresh job, whose runner is the verifier and which holds no line of the
candidate's code, loads that program in a new sandbox, predicts the validation set and
measures parameters, FLOPs and batch-1 latency. Its predictions are the ones scored, so the
figures and the accuracy belong to one net, whatever net the candidate chose to export. Peak
memory comes from the training job's cgroup, read by the host (the process backend's own group;
on Docker, `ContainerPeak`); where the host cannot see one (no root, a
remote engine, the systemd driver for a container per job) it stays self-reported.

Every figure carries its source (`measured_by`): "verifier", "cgroup" or "self-reported". When
a hardware limit is active, a figure that is only self-reported fails that limit, saying so.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from sandbox.backends.base import Backend, Job, Limits
from sandbox.backends.workdir import bound_out_dir, make_job_dir, remove_job_dir
from sandbox.hardware import HardwareLimits
from sandbox.inside import VERIFIER
from sandbox.job_report import read_report
from sandbox.scoring import InvalidPredictions, read_predictions
from sandbox.untrusted import HostileOutput, copy_bounded

PROGRAM = "net.pt2"
MAX_PROGRAM_MB = 256
VERIFIED = ("params", "flops", "latency_ms")
SELF_REPORTED = "self-reported"
# What the measuring job needs of the training config (never the candidate's code).
_CONFIG_KEYS = ("num_classes", "input_shape", "mean", "std", "eval_batch_size", "threads")


@dataclass
class Verification:
    """What the verifier measured, or why it could not (`problem`)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    predictions: torch.Tensor | None = None
    problem: str = ""
    seconds: float = 0.0


def verification_backend(backend: Backend) -> Backend | None:
    """A backend that runs one fresh job's own runner.py (`fresh_job_backend`: a backend says
    where; the warm worker runs only ours), or None when it has no such place."""
    fresh = getattr(backend, "fresh_job_backend", None)
    return cast("Backend", fresh()) if callable(fresh) else None


def verify(
    backend: Backend | None,
    train_out: Path,
    config: dict[str, Any],
    data_dir: Path,
    n_val: int,
    limits: Limits,
) -> Verification:
    """Measure the program the training job left in `train_out`, in a fresh sandbox."""
    started = time.monotonic()
    if backend is None:
        return Verification(problem="this backend has no fresh sandbox to measure in")
    work = make_job_dir()
    try:
        job_dir, out_dir = work / "job", work / "out"
        job_dir.mkdir()
        out_dir.mkdir()
        work.chmod(0o755)
        if not copy_bounded(train_out, PROGRAM, job_dir / PROGRAM, MAX_PROGRAM_MB * 2**20):
            return Verification(problem="the net was not exported (torch.export)")
        shutil.copyfile(VERIFIER, job_dir / "runner.py")
        measuring = {k: config[k] for k in _CONFIG_KEYS if k in config}
        (job_dir / "config.json").write_text(json.dumps(measuring), encoding="utf-8")
        for path in job_dir.iterdir():
            path.chmod(0o644)
        job_dir.chmod(0o755)
        bound_out_dir(out_dir, limits.scratch_mb)
        outcome = backend.run(Job(job_dir, data_dir, out_dir, limits))
        result = _read(out_dir, config["num_classes"], n_val)
        if not result.problem and outcome.exit_code != 0:
            result = Verification(problem=f"the verifier exited with {outcome.exit_code}")
    finally:
        remove_job_dir(work)
    result.seconds = time.monotonic() - started
    return result


def _read(out_dir: Path, num_classes: int, n_val: int) -> Verification:
    try:
        report = read_report(out_dir)
        if report is None or report["status"] != "ok":
            reason = report["message"] if report else "no report"
            return Verification(problem=f"the program could not be measured: {reason[:200]}")
        predictions = read_predictions(out_dir / "predictions.json", n_val, num_classes)
    except (HostileOutput, InvalidPredictions) as exc:
        return Verification(problem=f"the verifier's output was refused: {exc}")
    metrics = {k: report[k] for k in VERIFIED}  # type: ignore[literal-required]
    return Verification(metrics=metrics, predictions=predictions)


@dataclass
class Figures:
    """A trained candidate's metrics, each with its source, and the predictions to score."""

    metrics: dict[str, Any]
    measured_by: dict[str, str]
    predictions: torch.Tensor | None  # the verifier's; None: score the runner's
    problem: str  # why the verifier measured nothing ("" when it did, or was not asked)
    seconds: float | None  # the verification's cost, when one ran


def measured_figures(
    claimed: dict[str, Any], host_peak_mb: float | None, check: Verification | None
) -> Figures:
    """The report's claims, replaced by what the verifier and the host measured where they did."""
    metrics = dict(claimed)
    measured_by = dict.fromkeys(metrics, SELF_REPORTED)
    if check is not None and check.predictions is not None:
        metrics.update(check.metrics)
        measured_by.update(dict.fromkeys(check.metrics, "verifier"))
    if host_peak_mb is not None:
        metrics["peak_memory_mb"], measured_by["peak_memory_mb"] = host_peak_mb, "cgroup"
    return Figures(
        metrics,
        measured_by,
        check.predictions if check is not None else None,
        check.problem if check is not None else "",
        check.seconds if check is not None else None,
    )


def unverified(limits: HardwareLimits, figures: Figures) -> list[str]:
    """One phrase per active limit whose figure only the candidate's own process reported."""
    found = []
    for limit in limits.active():
        metric = limit.removeprefix("max_")
        if figures.measured_by.get(metric, SELF_REPORTED) == SELF_REPORTED:
            why = f": {figures.problem}" if figures.problem and metric in VERIFIED else ""
            found.append(f"{metric} cannot be verified (only self-reported{why})")
    return found
