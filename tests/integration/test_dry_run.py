"""The dry run through every sandbox backend (Docker per job, warm Docker, process): real
candidates are built and run forward once, never trained, and a shape error comes back traced.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.backends.base import Backend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.sandbox_jobs import LIMITS, TRAIN, on_the_default_backend, source

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]


def dry_run(backend: Backend, data: PreparedDataset, name: str, **kw: Any) -> dict[str, Any]:
    evaluator = Evaluator(data, backend, TRAIN, LIMITS, precheck=False, **kw)
    return dict(evaluator.dry_run(source(name)))


def test_a_shape_error_comes_back_traced(backend: Backend, mnist: PreparedDataset) -> None:
    result = dry_run(backend, mnist, "shape_mismatch")  # Linear(8*32*32) after a conv on 28x28
    assert (result["status"], result["kind"]) == ("error", "shape"), result
    trace = "conv Conv2d -> (2, 8, 26, 26); fc Linear FAILED on input (2, 5408)"
    assert trace in result["message"]
    assert result["shape_trace"][-1]["in_features_expected"] == 8 * 26 * 26
    assert result["val_accuracy"] is None and result["backend"] == backend.name


@on_the_default_backend  # the runner's dry-run mode; every backend meets it in the test above
def test_a_good_net_passes_without_training(backend: Backend, mnist: PreparedDataset) -> None:
    # spins forever once in training mode: only a run that stops before training can pass
    result = dry_run(backend, mnist, "loop_in_forward")
    assert (result["status"], result["kind"]) == ("ok", "ok"), result
    assert result["message"] == "dry run ok: output (2, 10)"
    assert result["params"] == 784 * 10 + 10
    assert result["val_accuracy"] is None and result["train_seconds"] is None


@on_the_default_backend
@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [("import_error", "import", "fancy_layers"), ("wrong_output", "shape", "(2, 7)")],
)
def test_other_failures_are_classified_as_in_training(
    backend: Backend, mnist: PreparedDataset, name: str, kind: str, words: str
) -> None:
    result = dry_run(backend, mnist, name)
    assert (result["status"], result["kind"]) == ("error", kind), result
    assert words in result["message"]


def test_a_hanging_init_stops_at_the_dry_runs_own_limit(
    backend: Backend, mnist: PreparedDataset
) -> None:
    started = time.monotonic()
    result = dry_run(backend, mnist, "loop_in_init", dry_run_timeout_s=10)
    assert (result["kind"], result["message"]) == (
        "timeout",
        "stopped at the wall-time limit of 10 s",
    ), result
    assert time.monotonic() - started < 10 + 15
