"""How the host reads a finished job: limits, reports, predictions, signals; and the cache.

A scripted backend stands in for the sandbox and writes what a runner (or a hostile candidate)
would have written; the real backends are exercised in tests/integration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.backends.base import Job, Limits, RunOutcome
from sandbox.cache import ResultCache
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.sandbox_jobs import NET, OK_REPORT, ScriptedBackend, outcome, writes


def evaluator(mnist: PreparedDataset, act, cache: ResultCache | None = None) -> Evaluator:
    return Evaluator(mnist, ScriptedBackend(act), {}, Limits(timeout_s=7, memory_mb=999), cache)


def test_accuracy_is_computed_on_the_host(mnist: PreparedDataset) -> None:
    labels = mnist.val_labels().tolist()
    half = labels[: len(labels) // 2] + [(y + 1) % 10 for y in labels[len(labels) // 2 :]]
    result = evaluator(mnist, writes(OK_REPORT | {"val_accuracy": 1.0}, half)).evaluate(NET)
    assert result["status"] == "ok"
    assert result["val_accuracy"] == pytest.approx(0.5)  # the report's own claim is ignored
    assert (result["params"], result["flops"], result["train_seconds"]) == (10, 20, 1.5)


def test_the_job_carries_no_validation_labels(mnist: PreparedDataset) -> None:
    seen: dict[str, object] = {}

    def act(job: Job) -> RunOutcome:
        seen["config"] = json.loads((job.job_dir / "config.json").read_text())
        seen["data"] = sorted(p.name for p in job.data_dir.iterdir())
        return outcome(0)

    evaluator(mnist, act).evaluate(NET)
    assert seen["data"] == ["meta.json", "train_images.pt", "train_labels.pt", "val_images.pt"]
    assert seen["config"]["num_classes"] == 10  # type: ignore[index]
    assert seen["config"]["input_shape"] == [1, 28, 28]  # type: ignore[index]


@pytest.mark.parametrize(
    ("act", "kind", "words"),
    [
        (lambda job: outcome(None, timed_out=True), "timeout", "7 s"),
        (lambda job: outcome(137, oom=True), "oom", "999 MiB"),
        (lambda job: outcome(-11), "killed", "SIGSEGV"),
        (lambda job: outcome(137), "killed", "SIGKILL"),
        (lambda job: outcome(0), "runtime", "exited with code 0 before reporting"),
        (writes(OK_REPORT), "runtime", "no predictions"),
        (writes(OK_REPORT, [0, 1]), "runtime", "expected 400 predictions"),
        (writes({"status": "error", "kind": "shape", "message": "bad shape"}), "shape", "bad"),
        (writes({"status": "error", "kind": "made-up"}, code=1), "runtime", "code 1"),
    ],
)
def test_outcomes_are_classified(mnist: PreparedDataset, act, kind: str, words: str) -> None:
    result = evaluator(mnist, act).evaluate(NET)
    assert (result["status"], result["kind"]) == ("error", kind)
    assert words in result["message"]
    assert result["val_accuracy"] is None


def test_static_problems_never_start_a_sandbox(mnist: PreparedDataset) -> None:
    ev = evaluator(mnist, writes(OK_REPORT))
    assert ev.evaluate("class Net(:\n")["kind"] == "syntax"
    assert ev.evaluate("x = 1\n")["kind"] == "no_net"
    assert len(ev.backend.jobs) == 0  # type: ignore[attr-defined]


def test_identical_code_is_trained_once(mnist: PreparedDataset, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    labels = mnist.val_labels().tolist()
    ev = evaluator(mnist, writes(OK_REPORT, labels), cache)
    first = ev.evaluate(NET)
    again = ev.evaluate("# same net, other comments\n" + NET)
    assert len(ev.backend.jobs) == 1  # type: ignore[attr-defined]
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["val_accuracy"] == first["val_accuracy"] == 1.0
    # the cache survives the process: a new evaluator over the same file hits it too
    assert evaluator(mnist, writes(None), ResultCache(cache.path)).evaluate(NET)["cached"]
    # a different setting is a different key
    other = Evaluator(
        mnist, ScriptedBackend(writes(OK_REPORT, labels)), {"lr": 0.1}, ev.limits, cache
    )
    assert other.evaluate(NET)["cached"] is False
