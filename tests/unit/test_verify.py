"""Verified metrics without a sandbox: the verifier's checks on an exported program, the labels
each figure carries, and which limit a self-reported figure fails (sandbox/verify.py,
sandbox/inside/verifier.py). The twins themselves run in tests/integration/test_verified_metrics.py."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from sandbox.inside import runner, verifier
from sandbox.backends.docker import DockerBackend
from sandbox.backends.process import ProcessBackend
from sandbox.backends.warm import WarmDockerBackend
from sandbox.hardware import HardwareLimits
from sandbox.verify import Verification, measured_figures, unverified, verification_backend


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.conv(x).mean((2, 3)))  # (B, 10)
        return out


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "net.pt2"
    runner.export_net(Small(), torch.zeros(2, 1, 28, 28), str(path), max_mb=16)
    assert path.is_file()
    return path


def tampered(program: Path, dest: Path, old: str, new: str) -> Path:
    """A copy of `program` whose graph JSON has `old` replaced by `new`."""
    with zipfile.ZipFile(program) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".json") and old.encode() in data:
                data = data.replace(old.encode(), new.encode())
            out.writestr(info, data)
    return dest


def test_an_exported_net_is_measured_like_the_eager_one(program: Path) -> None:
    loaded = verifier.load_program(str(program))
    assert verifier.count_params(loaded) == sum(p.numel() for p in Small().parameters())
    assert loaded.module()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)  # batch size left free


def test_a_graph_calling_anything_but_aten_is_refused(program: Path, tmp_path: Path) -> None:
    target = next(iter(_targets(program)))
    bad = tampered(program, tmp_path / "bad.pt2", f'"{target}"', '"torch.os.system"')
    with pytest.raises(verifier.Unverifiable, match=r"torch\.os\.system"):
        verifier.check_program(str(bad))


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("Symbol('s77', positive=True, integer=True)", True),
        ("Max(2, s0) + FloorDiv(s1, 2)*3", True),
        ("exec('import os')", False),
        ("s0.__class__", False),
        ("open('/etc/passwd')", False),
        ("s0; s1", False),
    ],
)
def test_shape_expressions_must_be_plain_arithmetic(text: str, plain: bool) -> None:
    assert verifier.plain_expression(text) is plain


def test_each_figure_says_who_measured_it() -> None:
    claimed = {"params": 1_000, "flops": 1_000, "peak_memory_mb": 1.0, "latency_ms": 0.001}
    check = Verification(
        metrics={"params": 20_490, "flops": 2_063_488, "latency_ms": 0.4},
        predictions=torch.zeros(4, dtype=torch.long),
    )
    figures = measured_figures(claimed, 407.6, check)
    assert figures.metrics == {
        "params": 20_490,
        "flops": 2_063_488,
        "peak_memory_mb": 407.6,
        "latency_ms": 0.4,
    }
    assert set(figures.measured_by.values()) == {"verifier", "cgroup"}
    limits = HardwareLimits(max_params=50_000, max_peak_memory_mb=500)
    assert unverified(limits, figures) == []


def test_a_self_reported_figure_fails_only_its_active_limit() -> None:
    claimed = {"params": 1_000, "flops": None, "peak_memory_mb": 1.0, "latency_ms": 0.001}
    figures = measured_figures(claimed, None, Verification(problem="the net was not exported"))
    assert unverified(HardwareLimits(), figures) == []
    found = unverified(HardwareLimits(max_params=50_000, max_peak_memory_mb=500), figures)
    assert found == [
        "params cannot be verified (only self-reported: the net was not exported)",
        "peak_memory_mb cannot be verified (only self-reported)",
    ]


def test_verification_runs_in_a_fresh_job_backend() -> None:
    warm = WarmDockerBackend.__new__(WarmDockerBackend)
    warm.image = "some:tag"
    fresh = verification_backend(warm)
    assert type(fresh) is DockerBackend and fresh.image == "some:tag"
    process = ProcessBackend()
    assert verification_backend(process) is process

    class Scripted:
        name = "scripted"

    assert verification_backend(Scripted()) is None  # type: ignore[arg-type]


def _targets(program: Path) -> set[str]:
    with zipfile.ZipFile(program) as archive:
        texts = [archive.read(i) for i in archive.infolist() if i.filename.endswith(".json")]
    found: set[str] = set()
    for text in texts:
        found |= {v for k, v in verifier.strings(json.loads(text)) if k == "target"}
    return found
