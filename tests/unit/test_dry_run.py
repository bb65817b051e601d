"""The dry run: the runner's shape trace on real nets, its `dry_run` mode as a real process, and
how the host reads a dry run's report (hostile input, never cached).

The nets below are our own test code, run here in-process on purpose: they exercise the runner's
hooks directly. Candidates' code only ever runs in the sandbox (tests/integration/test_dry_run.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sandbox.backends.base import Job, Limits, RunOutcome
from sandbox.cache import ResultCache
from sandbox.data import PreparedDataset
from sandbox.dry_run import MAX_NAME_CHARS, MAX_STEPS, failed_step, read_shape_trace
from sandbox.evaluate import Evaluator
from sandbox.inside import runner
from sandbox.result import EvalResult, new_result
from tests.helpers.sandbox_jobs import NET, OK_REPORT, ScriptedBackend, outcome, writes


class FlatNet(nn.Module):
    """A 0.5B model's classic: two conv stages, then a Linear sized for another input."""

    def __init__(self, in_features: int = 3136) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 16, 16)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 8, 8)
        )  # fmt: skip
        self.fc = nn.Linear(in_features, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class ViewNet(FlatNet):
    def forward(self, x):
        return self.fc(self.features(x).view(-1, 3584))  # 4096 values per image, not 3584


class StrayLinear(nn.Module):
    """Builds a module inside forward: not in the net, still traced."""

    def forward(self, x):
        return nn.Linear(5, 10)(x.flatten(1))


class LoopNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        x = x.flatten(1)[:, :4]
        for _ in range(500):
            x = self.act(x)
        return self.fc(x)


class SwallowingNet(nn.Module):
    """Catches its own first failure: the trace must still name the one that really failed."""

    def __init__(self) -> None:
        super().__init__()
        self.bad = nn.Linear(7, 7)
        self.fc = nn.Linear(3 * 32 * 32, 10)
        self.bn = nn.BatchNorm1d(11)

    def forward(self, x):
        with contextlib.suppress(RuntimeError):
            self.bad(x.flatten(1))
        return self.bn(self.fc(x.flatten(1)))


class SwallowThenViewNet(SwallowingNet):
    def forward(self, x):
        with contextlib.suppress(RuntimeError):
            self.bad(x.flatten(1))
        return self.fc(x.view(-1, 7))  # Net.forward's own mistake, after a caught one


def check(
    net: nn.Module, classes: int = 10
) -> tuple[runner.CandidateFailure | None, dict[str, Any]]:
    report: dict[str, Any] = {}
    try:
        runner.check_output_shape(net, torch.randn(2, 3, 32, 32), classes, report)
    except runner.CandidateFailure as failure:
        return failure, report
    return None, report


def test_a_linear_fed_the_wrong_flattened_size_is_traced_to_its_name() -> None:
    failure, report = check(FlatNet())
    assert failure is not None and failure.kind == "shape"
    assert "mat1 and mat2" in failure.message
    assert "features.0 Conv2d -> (2, 32, 32, 32); features.1 ReLU" in failure.message
    assert "features.5 MaxPool2d -> (2, 64, 8, 8); fc Linear FAILED on input (2, 4096)" in (
        failure.message
    )
    steps = report["shape_trace"]
    assert [s["module"] for s in steps][:2] == ["features.0", "features.1"]
    assert "features" not in [s["module"] for s in steps]  # a Sequential repeats its last child
    assert steps[-1] == {
        "module": "fc",
        "type": "Linear",
        "out": None,
        "failed": True,
        "in_shape": [2, 4096],
        "in_features_expected": 4096,
    }


def test_a_failure_in_forward_itself_is_charged_to_net_forward() -> None:
    failure, report = check(ViewNet())
    assert failure is not None and failure.kind == "shape"
    assert "(Net.forward) ViewNet FAILED on input (2, 3, 32, 32)" in failure.message
    last = report["shape_trace"][-1]
    assert (last["module"], last["failed"]) == ("", True)
    assert "in_features_expected" not in last
    assert report["shape_trace"][-2]["out"] == [2, 64, 8, 8]


def test_a_module_built_inside_forward_is_traced_as_stray() -> None:
    failure, report = check(StrayLinear())
    assert failure is not None
    assert report["shape_trace"][-1]["module"] == "?"
    assert report["shape_trace"][-1]["in_features_expected"] == 3 * 32 * 32


def test_a_wrong_output_is_explained_by_the_whole_trace() -> None:
    failure, report = check(FlatNet(4096), classes=7)
    assert failure is not None and failure.kind == "shape"
    assert "Net output has shape (2, 10), expected (2, 7)" in failure.message
    assert "fc Linear -> (2, 10)" in failure.message
    assert failed_step(read_shape_trace(report["shape_trace"])) is None


def test_a_looping_forward_keeps_a_bounded_trace_with_the_failure_last() -> None:
    failure, report = check(LoopNet())
    assert failure is not None
    steps = report["shape_trace"]
    assert len(steps) == runner.ShapeTrace.HEAD + runner.ShapeTrace.TAIL
    assert steps[-1]["module"] == "fc" and steps[-1]["in_features_expected"] == 4
    assert "calls not shown" in failure.message
    assert len(failure.message) < 2000


def test_a_failure_the_net_swallowed_is_not_blamed() -> None:
    failure, report = check(SwallowingNet())
    assert failure is not None
    assert report["shape_trace"][-1]["module"] == "bn"
    assert [s["module"] for s in report["shape_trace"]] == ["fc", "bn"]
    failure, report = check(SwallowThenViewNet())
    assert failure is not None
    assert [s["module"] for s in report["shape_trace"]] == [""]


def test_a_good_net_passes_and_leaves_no_hook_behind() -> None:
    failure, report = check(FlatNet(4096))
    assert failure is None
    assert report["shape_trace"][-1] == {"module": "fc", "type": "Linear", "out": [2, 10]}
    from torch.nn.modules import module as torch_module

    assert not torch_module._global_forward_hooks
    assert not torch_module._global_forward_pre_hooks


# --- the runner's dry_run mode, as the real process the sandbox runs ---------------------------

BROKEN = """
import torch.nn as nn

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 28 * 28, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))
"""


def run_runner(
    tmp_path: Path, code: str, config: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    job, data, out = tmp_path / "job", tmp_path / "data", tmp_path / "out"
    for d in (job, data, out):
        d.mkdir()
    (job / "candidate.py").write_text(code)
    (job / "config.json").write_text(json.dumps(config))
    runner_py = Path(runner.__file__)
    cmd = [sys.executable, "-I", "-B", str(runner_py), "--job", str(job)]
    subprocess.run([*cmd, "--data", str(data), "--out", str(out)], timeout=120, check=False)
    return json.loads((out / "report.json").read_text()), sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize(("code", "kind"), [(BROKEN, "shape"), (BROKEN.replace("28", "26"), "ok")])
def test_the_runners_dry_run_needs_no_data_and_stops_before_training(
    tmp_path: Path, code: str, kind: str
) -> None:
    # the data dir is empty: a runner that tried to train would fail reading it
    report, files = run_runner(tmp_path, code, {"mode": "dry_run", "input_shape": [1, 28, 28]})
    assert report["kind"] == kind, report
    assert files == ["report.json"]  # no predictions
    assert "train_s" not in report["timings"]
    assert report["shape_trace"][0] == {"module": "conv", "type": "Conv2d", "out": [2, 8, 26, 26]}
    if kind == "ok":
        assert report["message"] == "dry run ok: output (2, 10)"
        assert report["params"] == sum(p.numel() for p in nn.Conv2d(1, 8, 3).parameters()) + (
            8 * 26 * 26 * 10 + 10
        )
    else:
        assert report["shape_trace"][-1]["in_features_expected"] == 8 * 26 * 26


# --- the host's side ---------------------------------------------------------------------------


def dry_evaluator(mnist: PreparedDataset, act, cache: ResultCache | None = None) -> Evaluator:
    limits = Limits(timeout_s=600, memory_mb=999)
    return Evaluator(mnist, ScriptedBackend(act), {}, limits, cache, dry_run_timeout_s=9)


def test_a_dry_run_asks_the_runner_for_one_and_is_never_cached(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    seen: list[tuple[dict[str, Any], float]] = []

    def act(job: Job) -> RunOutcome:
        seen.append((json.loads((job.job_dir / "config.json").read_text()), job.limits.timeout_s))
        (job.out_dir / "report.json").write_text(json.dumps({"status": "ok", "params": 12}))
        return outcome(0)

    cache = ResultCache(tmp_path / "cache.sqlite")
    ev = dry_evaluator(mnist, act, cache)
    result = ev.dry_run(NET)
    assert (result["status"], result["kind"], result["val_accuracy"]) == ("ok", "ok", None)
    assert result["message"] == "dry run ok: output (2, 10)"
    assert result["params"] == 12 and result["backend"] == "scripted"
    assert seen[0][0]["mode"] == "dry_run" and seen[0][1] == 9  # its own, shorter time limit
    assert ev.dry_run(NET)["cached"] is False
    assert ev.cache is not None and ev.cache.get(result["code_hash"], ev.fingerprint()) is None
    # and a training run of the same code really trains (here: the scripted sandbox is called)
    ev.backend = ScriptedBackend(writes(OK_REPORT, mnist.val_labels().tolist()))
    trained = ev.evaluate(NET)
    assert (trained["kind"], trained["cached"]) == ("ok", False)
    assert "mode" not in json.dumps(ev.runner_config())


def test_a_dry_run_timeout_names_its_own_limit(mnist: PreparedDataset) -> None:
    result = dry_evaluator(mnist, lambda job: outcome(None, timed_out=True)).dry_run(NET)
    assert (result["kind"], result["message"]) == (
        "timeout",
        "stopped at the wall-time limit of 9 s",
    )


def test_static_problems_are_answered_without_a_sandbox(mnist: PreparedDataset) -> None:
    ev = dry_evaluator(mnist, writes(OK_REPORT))
    assert ev.dry_run("class Net(:\n")["kind"] == "syntax"
    assert len(ev.backend.jobs) == 0  # type: ignore[attr-defined]


def test_a_failed_dry_run_carries_its_trace(mnist: PreparedDataset) -> None:
    trace: list[dict[str, Any]] = [
        {"module": "conv", "type": "Conv2d", "out": [2, 8, 26, 26]},
        {"module": "fc", "type": "Linear", "out": None, "failed": True, "in_shape": [2, 5408]},
    ]
    trace[1]["in_features_expected"] = 5408
    report: dict[str, object] = {
        "status": "error",
        "kind": "shape",
        "message": "x" * 5000,
        "shape_trace": trace,
    }
    result = dry_evaluator(mnist, writes(report, code=1)).dry_run(NET)
    assert result["kind"] == "shape" and len(result["message"]) == 2000
    assert result.get("shape_trace") == trace


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        (None, None),
        ("conv -> (2, 8)", None),
        ([], None),
        ([1, 2, 3], None),
        ([{"module": 1, "type": "Conv2d", "out": [2]}], None),
        ([{"module": "m", "type": "Conv2d", "out": "big"}], [{"module": "m", "type": "Conv2d"}]),
        ([{"module": "m", "type": "Conv2d", "out": [2, -1]}], [{"module": "m", "type": "Conv2d"}]),
        (
            [{"module": "m", "type": "Conv2d", "out": [True, 8]}],
            [{"module": "m", "type": "Conv2d"}],
        ),
        (
            [{"module": "m" * 500, "type": "Linear", "out": [2, 10]}],
            [{"module": "m" * MAX_NAME_CHARS, "type": "Linear", "out": [2, 10]}],
        ),
        (  # a failed step's output is never believed, its input shape only when well formed
            [{"module": "fc", "type": "Linear", "out": [2, 10], "failed": True, "in_shape": "x"}],
            [{"module": "fc", "type": "Linear", "failed": True}],
        ),
        ([{"module": "a", "type": "ReLU", "out": [1]}] * (MAX_STEPS + 5), "MAX_STEPS"),
    ],
)
def test_a_forged_trace_is_dropped_or_cleaned(raw: object, read: object) -> None:
    if read == "MAX_STEPS":
        read = [{"module": "a", "type": "ReLU", "out": [1]}] * MAX_STEPS
    elif isinstance(read, list):  # a step whose output was unreadable keeps out=None
        read = [{"out": None, **step} for step in read]
    assert read_shape_trace(raw) == read


def test_a_forged_trace_is_bounded() -> None:
    huge: list[dict[str, object]] = [{"module": "m" * 10_000, "type": "T", "out": [2] * 100}]
    huge *= 10_000
    huge.append(
        {"module": "fc", "type": "Linear", "out": [2], "failed": True, "in_features_expected": -3}
    )
    steps = read_shape_trace(huge)
    assert steps is not None and len(steps) == MAX_STEPS
    assert all(len(s["module"]) <= 200 and s["out"] is None for s in steps)
    bad_linear = read_shape_trace(huge[-1:])
    assert bad_linear == [{"module": "fc", "type": "Linear", "out": None, "failed": True}]


def test_both_executors_dry_run_in_the_local_sandbox(mnist: PreparedDataset) -> None:
    from sandbox.executors import LocalExecutor
    from sandbox.ray_executor import RayExecutor
    from sandbox.settings import SandboxSettings

    ev = dry_evaluator(mnist, writes({"status": "ok", "params": 3}))
    assert LocalExecutor(ev).dry_run(NET)["message"] == "dry run ok: output (2, 10)"
    ray = RayExecutor(SandboxSettings(), ev)  # never connects: a dry run stays on this machine
    assert ray.dry_run(NET)["params"] == 3
    assert len(ev.backend.jobs) == 2  # type: ignore[attr-defined]

    class TrainOnly:
        def evaluate(self, code: str) -> EvalResult:
            return new_result("ok", "", "")

    with pytest.raises(TypeError, match="TrainOnly has no dry_run"):
        LocalExecutor(TrainOnly()).dry_run(NET)
