"""What the runner learns from a net beyond its output shape: lazy modules the forward never
called (counted, not crashed on), layers no gradient reaches, and the architecture fingerprint;
and how the host reads those fields (bounded, hostile input).

The runner runs as the real process (a subprocess, no sandbox: the nets are ours, written the way
a 0.5B coder writes them); `architecture_fingerprint` is also called in-process on our own nets.
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from sandbox.backends.base import Job, Limits, RunOutcome
from sandbox.data import PreparedDataset
from sandbox.dry_run import MAX_NAMES, read_probes
from sandbox.evaluate import Evaluator
from sandbox.inside import runner
from tests.helpers.networks import (
    SAME_NETWORK,
    SKIPS_FEATURES,
    TANH,
    USES_FEATURES,
    WIDER,
    real_evaluator,
)
from tests.helpers.sandbox_jobs import ScriptedBackend


# What the 0.5B coder wrote in issue 25's run: the skeleton's `features` (an extra LazyLinear
# in it), a forward that flattens the raw input straight into the head, an example-usage tail.
def load_net(code: str) -> torch.nn.Module:
    """Our own test source, run in-process (not a candidate's)."""
    module = types.ModuleType("net_under_test")
    exec(compile(code.split("\n# Example usage")[0], "net.py", "exec"), module.__dict__)
    net: torch.nn.Module = module.Net()
    return net


def fingerprint(code: str) -> str:
    net, x = load_net(code), torch.randn(2, 1, 28, 28)
    report: dict[str, Any] = {}
    runner.check_output_shape(net, x, 10, report)
    runner.count_params(net, report)
    return runner.architecture_fingerprint(net, x)[0]


# -- lazy modules the forward never called ---------------------------------------------------------


def test_an_unused_lazy_layer_trains_and_is_reported_not_charged_to_the_candidate(
    mnist: PreparedDataset,
) -> None:
    result = real_evaluator(mnist).evaluate(SKIPS_FEATURES)
    assert result["kind"] == "ok", result  # before: runtime, from the runner's numel()
    assert result["unused_lazy"] == ["features.5"]
    head = (784 * 256 + 256) + (256 * 10 + 10)
    features = (1 * 32 * 9 + 32) + (32 + 32)  # conv, batch norm: built, if never called
    assert result["params"] == head + features  # the lazy layer holds no value
    assert result["val_accuracy"] is not None


def test_the_dry_run_counts_parameters_after_the_forward_and_names_the_unused_lazy_layer(
    mnist: PreparedDataset,
) -> None:
    result = real_evaluator(mnist).dry_run(SKIPS_FEATURES)
    assert result["kind"] == "ok", result
    assert result["unused_lazy"] == ["features.5"]
    # ... and the layers no gradient reaches, in the net's order
    assert result["dead_layers"] == ["features.0", "features.1", "features.5"]
    assert result["dead_params"] == (1 * 32 * 9 + 32) + (32 + 32)
    assert len(result["fingerprint"]) == 64


def test_a_net_that_uses_its_features_has_no_dead_layers(mnist: PreparedDataset) -> None:
    result = real_evaluator(mnist).dry_run(USES_FEATURES)
    assert result["kind"] == "ok", result
    assert "dead_layers" not in result and "unused_lazy" not in result


# -- the architecture fingerprint ----------------------------------------------------------------


def test_the_same_network_in_other_words_has_one_fingerprint() -> None:
    assert fingerprint(SKIPS_FEATURES) == fingerprint(SAME_NETWORK)


@pytest.mark.parametrize(
    "other",
    [
        WIDER,  # another width
        USES_FEATURES,  # the conv layers run
        TANH,  # another activation
        SKIPS_FEATURES.replace("return self.head(x)", "return self.head(F.relu(x))"),
    ],
)  # fmt: skip
def test_another_network_has_another_fingerprint(other: str) -> None:
    assert fingerprint(other) != fingerprint(SKIPS_FEATURES)


def test_the_fingerprint_costs_one_forward_pass() -> None:
    net, x = load_net(USES_FEATURES), torch.randn(2, 1, 28, 28)
    runner.check_output_shape(net, x, 10, {})
    started = time.perf_counter()
    for _ in range(5):
        digest, steps = runner.architecture_fingerprint(net, x)
    each = (time.perf_counter() - started) / 5
    print(f"fingerprint: {steps} steps, {each * 1000:.1f} ms")
    # conv, batch norm, relu, pool; the head's flatten, linear, relu, linear
    assert steps == 8 and each < 2.0  # a crowded 2-core machine: 0.1 s, as one plain forward
    assert runner.architecture_fingerprint(net, x)[0] == digest  # the same on every call


# -- the host's reading --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (
            {"dead_layers": ["a", 3, "b" * 999], "dead_params": 5},
            {"dead_layers": ["a", "b" * 200], "dead_params": 5},
        ),
        ({"dead_layers": "features", "dead_params": -1}, {}),
        ({"dead_layers": [], "dead_params": 7}, {}),
        ({"unused_lazy": [{"x": 1}], "fingerprint": "f" * 63}, {}),
        ({"fingerprint": "A" * 64}, {}),
        ({"fingerprint": "ab" * 32, "dead_params": 9}, {"fingerprint": "ab" * 32}),
        ("not a dict", {}),
    ],
)  # fmt: skip
def test_forged_probe_fields_are_dropped_or_cut(raw: object, kept: dict[str, Any]) -> None:
    assert read_probes(raw) == kept


def test_probe_lists_are_bounded() -> None:
    assert len(read_probes({"dead_layers": ["x"] * 10_000})["dead_layers"]) == MAX_NAMES


def test_a_forged_report_reaches_the_result_only_through_the_reader(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    def forged(job: Job) -> RunOutcome:
        report = {"status": "ok", "params": 1, "dead_layers": ["x"] * 99, "fingerprint": "no"}
        (job.out_dir / "report.json").write_text(json.dumps(report))
        return RunOutcome(0, False, False, "", 0.1)

    ev = Evaluator(mnist, ScriptedBackend(forged), {}, Limits(timeout_s=9, memory_mb=999))
    result = ev.dry_run(SKIPS_FEATURES)
    assert result["dead_layers"] == ["x"] * MAX_NAMES and "fingerprint" not in result


TRAIN_MODE_TRAP = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        if self.training:
            raise RuntimeError("the dry run put the net in training mode")
        return self.fc(x.flatten(1))
"""


def test_the_probes_never_run_the_net_in_training_mode(mnist: PreparedDataset) -> None:
    """A forward may do anything in training mode (loop forever: tests/candidates): the dry run,
    its probes included, stays in eval mode."""
    result = real_evaluator(mnist).dry_run(TRAIN_MODE_TRAP)
    assert result["kind"] == "ok", result
    assert "dead_layers" not in result and len(result["fingerprint"]) == 64
