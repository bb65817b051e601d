"""The check step on what the network computes, not on its text: dead layers caught before
training and the skipped `features` fixed (agent/check/dead_layers.py), and the novelty check by
architecture fingerprint (agent/check/step.py, the archive's `architectures` table).

The dry runs are real: the runner process on the nets a 0.5B coder writes
(tests/unit/test_dry_run_probes.py's), unsandboxed. Each mechanism is also switched off, to show
that it is what makes the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import ARCH, RunArchive, SeenProgram
from agent.check.cascade import SandboxChecks
from agent.check.dead_layers import dead_layers_failure, fix_skipped_features
from agent.check.step import Attempt, Iteration, attempt_recorder, check_and_train
from agent.replies.edits import Reading
from agent.state import TaskInfo
from sandbox.code import code_hash
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.result import new_result
from tests.helpers.networks import (
    SAME_NETWORK,
    SKIPS_FEATURES,
    USES_FEATURES,
    WIDER,
    real_evaluator,
)

TASK = TaskInfo(dataset="mnist5k", input_shape=[1, 28, 28], num_classes=10, n_train=4500)

# A paper-style net: named layers, a hand-sized first Linear for the raw input, features unused
PAPER_STYLE = """import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super(Net, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.fc1 = nn.Linear(28 * 28, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        \"\"\"Forward pass.\"\"\"
        x = x.view(-1, 28 * 28)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
"""

# dead code outside `features`: caught, but no plain fix
EXTRA_UNUSED = USES_FEATURES.replace(
    "        self.head =", "        self.extra = nn.Linear(10, 10)\n        self.head ="
)


@dataclass
class Log:
    attempts: list[Attempt] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def train(self, code: str) -> dict[str, Any]:
        self.trained.append(code)
        return dict(new_result("ok", "trained", code_hash(code), val_accuracy=0.77))


def one_iteration(
    log: Log,
    checks: SandboxChecks,
    seen: dict[str, SeenProgram] | None = None,
    answers: list[str] | None = None,
    record: Any = None,
    number: int = 1,
) -> Iteration:
    """`answers`: the re-asks' replies (None: the novelty check is off)."""
    replies = list(answers or [])

    def reask(n: int, note: str) -> Reading:
        log.notes.append(note)
        return Reading(replies[min(n - 1, len(replies) - 1)], None)

    def both(attempt: Attempt) -> None:
        log.attempts.append(attempt)
        if record is not None:
            record(attempt)

    return Iteration(
        seen=seen if seen is not None else {},
        train=log.train,
        record=both,
        reask=reask if answers is not None else None,
        checks=checks,
        iteration=number,
    )


@pytest.fixture(scope="module")
def evaluator(mnist: PreparedDataset) -> Evaluator:
    return real_evaluator(mnist)


# -- dead layers ---------------------------------------------------------------------------------


def test_skipped_features_are_caught_by_the_dry_run_fixed_and_the_fixed_net_trains(
    evaluator: Evaluator,
) -> None:
    log = Log()
    final = check_and_train(SKIPS_FEATURES, one_iteration(log, SandboxChecks(evaluator, TASK)))
    assert [(a.source, a.stage, a.result["kind"]) for a in log.attempts] == [
        ("generator", "dry_run", "dead_layers"),
        ("fix:skipped_features", "train", "ok"),
    ]
    message = log.attempts[0].result["message"]
    assert message.startswith("the forward pass never reaches features.0, features.1, features.5")
    assert "(384 parameters get no gradient)" in message
    assert final.code is not None and log.trained == [final.code]
    assert "        x = self.features(x)\n        x = x.flatten(1)\n" in final.code
    assert "x.view(-1, 28 * 28)" not in final.code
    assert "# Example usage" in final.code  # the rest of the module as the model wrote it


def test_switched_off_the_dead_layers_train_as_they_are(evaluator: Evaluator) -> None:
    log = Log()
    checks = SandboxChecks(evaluator, TASK, dead_layers=False)
    check_and_train(SKIPS_FEATURES, one_iteration(log, checks))
    assert log.trained == [SKIPS_FEATURES]  # the MLP, its conv layers never run
    assert [a.stage for a in log.attempts] == ["train"]


def test_a_hand_sized_head_is_fixed_in_two_steps_features_then_in_features(
    evaluator: Evaluator,
) -> None:
    log = Log()
    check_and_train(PAPER_STYLE, one_iteration(log, SandboxChecks(evaluator, TASK)))
    assert [(a.source, a.result["kind"]) for a in log.attempts] == [
        ("generator", "dead_layers"),
        ("fix:skipped_features", "shape"),  # fc1 still expects 784 values
        ("fix:in_features", "ok"),
    ]
    assert "nn.Linear(3136, 128)" in log.trained[0]


def test_dead_layers_outside_features_are_sent_back_unfixed(evaluator: Evaluator) -> None:
    log = Log()
    final = check_and_train(EXTRA_UNUSED, one_iteration(log, SandboxChecks(evaluator, TASK)))
    assert log.trained == []
    assert final.result["kind"] == "dead_layers"
    assert final.result["message"].startswith("the forward pass never reaches extra (110 ")


def test_the_fix_needs_a_dead_layers_failure_inside_features_and_a_forward_without_them() -> None:
    failure = {"kind": "dead_layers", "dead_layers": ["features.0"]}
    assert fix_skipped_features(SKIPS_FEATURES, failure) is not None
    assert fix_skipped_features(SKIPS_FEATURES, {**failure, "kind": "shape"}) is None
    assert fix_skipped_features(SKIPS_FEATURES, {**failure, "dead_layers": ["head.1"]}) is None
    assert fix_skipped_features(USES_FEATURES, failure) is None  # forward reads self.features
    one_line = SKIPS_FEATURES.replace(
        "    def forward(self, x):  # x: (B, 1, 28, 28)\n        x = x.view(-1, 28 * 28)\n"
        "        return self.head(x)  # (B, 10)",
        "    def forward(self, x): return self.head(x.view(-1, 784))",
    )
    assert fix_skipped_features(one_line, failure) is None


def test_only_a_passed_dry_run_with_dead_layers_is_a_failure() -> None:
    ok = dict(new_result("ok", "dry run ok", "h", dead_layers=["features.0"], dead_params=3))
    assert dead_layers_failure(ok)["kind"] == "dead_layers"  # type: ignore[index]
    assert dead_layers_failure({**ok, "dead_layers": []}) is None
    assert dead_layers_failure({**ok, "status": "error", "kind": "shape"}) is None


# -- novelty by architecture ---------------------------------------------------------------------


def test_the_same_network_in_new_words_is_a_repeat_across_iterations(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    archive = RunArchive(tmp_path / "run")
    checks = SandboxChecks(evaluator, TASK, dead_layers=False)  # the MLPs train as they are
    first = Log()
    record = attempt_recorder(archive, 1)
    check_and_train(SKIPS_FEATURES, one_iteration(first, checks, {}, [], record, number=1))
    assert len(first.trained) == 1
    seen = archive.seen_before(2)  # from disk, as a resumed run reads it
    assert any(key.startswith(ARCH) for key in seen)
    second = Log()
    record = attempt_recorder(archive, 2)
    final = check_and_train(
        SAME_NETWORK, one_iteration(second, checks, seen, [SAME_NETWORK, WIDER], record, 2)
    )
    assert code_hash(SAME_NETWORK) != code_hash(SKIPS_FEATURES)  # not a repeat by text
    assert [(a.source, a.result["kind"]) for a in second.attempts] == [
        ("generator", "duplicate"),  # same network as iteration 1's
        ("reask", "duplicate"),  # the text seen a moment ago
        ("reask", "ok"),
    ]
    assert "same architecture fingerprint" in second.attempts[0].result["message"]
    assert second.notes[0].startswith("Your answer computed the same network as attempt 1")
    assert second.trained == [WIDER] and final.code == WIDER


def test_switched_off_the_same_network_trains_twice(evaluator: Evaluator) -> None:
    checks = SandboxChecks(evaluator, TASK, dead_layers=False)
    first, second = Log(), Log()
    seen: dict[str, SeenProgram] = {}
    check_and_train(SKIPS_FEATURES, one_iteration(first, checks, seen, None))
    check_and_train(SAME_NETWORK, one_iteration(second, checks, seen, None, number=2))
    assert first.trained == [SKIPS_FEATURES] and second.trained == [SAME_NETWORK]


def test_a_forgotten_iteration_forgets_its_fingerprints(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "run")
    result = dict(new_result("ok", "trained", "h1"))
    archive.record_attempt(3, 0, "generator", "code", "h1", result, "train", "", "f" * 64)
    assert ARCH + "f" * 64 in archive.seen_before(4)
    archive.forget_attempts(3)
    assert archive.seen_before(4) == {}
