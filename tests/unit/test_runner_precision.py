"""The runner's choice of mixed precision: fast where the hardware has it, never a new failure."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from torch import nn

from sandbox.inside import runner

CPU = torch.device("cpu")


def fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    real_open = runner._open

    def fake_open(path: str, *args: Any, **kwargs: Any) -> Any:
        if path == "/proc/cpuinfo":
            return io.StringIO(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(runner, "_open", fake_open)


@pytest.mark.parametrize(
    ("flags", "chosen"),
    [("avx2 avx512f amx_bf16 amx_tile", "bf16"), ("avx512f avx512_bf16", "bf16"), ("avx2", "off")],
)
def test_auto_picks_bf16_only_on_cpus_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, flags: str, chosen: str
) -> None:
    fake_cpuinfo(monkeypatch, flags)
    assert runner.resolve_autocast("auto", CPU) == chosen


@pytest.mark.parametrize("mode", ["off", "bf16", "fp16"])
def test_an_explicit_mode_is_kept(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    fake_cpuinfo(monkeypatch, "avx2")
    assert runner.resolve_autocast(mode, CPU) == mode


class NoBf16Kernel(nn.Module):
    """Stands for a net using an op that has no bf16 kernel on this device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("\"some_op\" not implemented for 'BFloat16'")
        return x.flatten(1)[:, :10]


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)")


def test_a_net_without_bf16_kernels_trains_in_fp32_instead_of_failing() -> None:
    cfg = {"autocast": "bf16", "channels_last": False}
    x = torch.randn(2, 3, 8, 8)
    assert runner.autocast_or_off(NoBf16Kernel(), x, cfg, CPU) == "off"
    assert runner.autocast_or_off(nn.Flatten(), x, cfg, CPU) == "bf16"


def test_other_errors_are_still_the_candidates() -> None:
    cfg = {"autocast": "bf16", "channels_last": False}
    with pytest.raises(runner.CandidateFailure) as failure:
        runner.autocast_or_off(Broken(), torch.randn(2, 3, 8, 8), cfg, CPU)
    assert failure.value.kind == "shape"
