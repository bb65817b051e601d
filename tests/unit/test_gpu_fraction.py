"""NASLOOP_GPU_MEMORY_FRACTION reaches torch.cuda inside the sandbox (as far as a CPU shows it).

The chain: the setting → `train_config()` → the config.json of a real evaluation job (captured by a
backend that only records it) → the runner's own `run()` reading that file → its device setup
calling `torch.cuda.set_per_process_memory_fraction` with the value, on a CUDA device that a
monkeypatched torch.cuda pretends to have. That the allocator then holds to it needs a GPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from sandbox.backends.base import Job, RunOutcome
from sandbox.data import PreparedDataset
from sandbox.evaluate import evaluator_from_settings
from sandbox.inside import runner
from sandbox.settings import load_settings
from tests.helpers.sandbox_jobs import NET


class Stop(Exception):
    """Raised where the runner would load the candidate: the device is set up by then."""


class JobCopier:
    """A backend that runs nothing: it keeps a copy of the job dir the sandbox would get."""

    name = "copier"

    def __init__(self, keep: Path) -> None:
        self.keep = keep

    def run(self, job: Job) -> RunOutcome:
        shutil.copytree(job.job_dir, self.keep)
        return RunOutcome(1, False, False, log_tail="", seconds=0.0)


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """torch.cuda as on a GPU machine, recording the memory fractions it is given."""
    fractions: list[float] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", fractions.append)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    return fractions


def job_of(
    mnist: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Path:
    """The job dir an evaluation built from `NASLOOP_*` settings hands to its sandbox."""
    monkeypatch.setenv("NASLOOP_DATASET", "mnist5k")
    monkeypatch.setenv("NASLOOP_DATA_DIR", str(mnist.root.parent.parent))  # already prepared
    monkeypatch.setenv("NASLOOP_RUNS_DIR", str(tmp_path / "runs"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    keep = tmp_path / "job"
    monkeypatch.setattr("sandbox.backends.select.make_backend", lambda *a, **k: JobCopier(keep))
    evaluator = evaluator_from_settings(load_settings(), announce=False)
    assert evaluator.dataset.root == mnist.root
    evaluator.evaluate(NET)
    return keep


def run_runner_until_candidate(
    job: Path, data: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The runner's own `run()` on that job, stopped where it would load the candidate."""

    def stop(path: str) -> Any:
        raise Stop

    monkeypatch.setattr(runner, "load_candidate", stop)
    report: dict[str, Any] = {"timings": {}}
    with pytest.raises(Stop):
        runner.run(str(job), str(data.public_dir), str(tmp_path), report)
    return report


def test_the_setting_reaches_set_per_process_memory_fraction(
    mnist: PreparedDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_cuda: list[float],
) -> None:
    job = job_of(mnist, tmp_path, monkeypatch, NASLOOP_GPU_MEMORY_FRACTION="0.35")
    assert json.loads((job / "config.json").read_text())["gpu_memory_fraction"] == 0.35
    report = run_runner_until_candidate(job, mnist, tmp_path, monkeypatch)
    assert report["device"] == "cuda"
    assert fake_cuda == [0.35]


def test_no_setting_no_cap(
    mnist: PreparedDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_cuda: list[float],
) -> None:
    job = job_of(mnist, tmp_path, monkeypatch)
    report = run_runner_until_candidate(job, mnist, tmp_path, monkeypatch)
    assert report["device"] == "cuda"
    assert fake_cuda == []


def test_a_cpu_job_never_touches_cuda(fake_cuda: list[float]) -> None:
    cfg = {**runner.DEFAULTS, "device": "cpu", "gpu_memory_fraction": 0.5}
    assert runner.setup_device(cfg).type == "cpu"
    assert fake_cuda == []
