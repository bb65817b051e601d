"""Real candidates, trained for real, through every sandbox backend (Docker per job, warm Docker,
process).

Every failure class comes from a program that really fails that way; after each test nothing of
its jobs may be left on the host: no container, no process of the sandbox uids, no cgroup, no job
dir, no mount (the `nothing_left_behind` fixture in conftest.py).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sandbox.backends.base import Backend, Limits
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.paths import CANDIDATES
from tests.helpers.sandbox_jobs import (
    LIMITS,
    MACHINE_WIDE,
    TRAIN,
    across_backends,
    on_the_default_backend,
    source,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]


def evaluate(backend: Backend, data: PreparedDataset, name: str, **kw: Any) -> dict[str, Any]:
    evaluator = Evaluator(
        data,
        backend,
        {**TRAIN, **kw.pop("train", {})},
        kw.pop("limits", LIMITS),
        precheck=kw.pop("precheck", False),  # let the sandboxed runner classify everything
    )
    return dict(evaluator.evaluate(source(name)))


def test_small_cnn_learns_and_counts_match_torch(backend: Backend, mnist: PreparedDataset) -> None:
    result = evaluate(backend, mnist, "small_cnn")
    assert result["status"] == "ok", result
    assert result["val_accuracy"] > 0.5  # chance is 0.1
    # the same counts, from torch's own counters, for the same (trusted, our own) module
    spec = importlib.util.spec_from_file_location("small_cnn", CANDIDATES / "small_cnn.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net(num_classes=10).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, *mnist.input_shape))
    assert result["params"] == sum(p.numel() for p in net.parameters())
    assert result["flops"] == counter.get_total_flops()
    assert result["train_seconds"] > 0
    assert result["backend"] == backend.name


# program -> (kind, words in the message); the runner classifies the first seven inside the
# sandbox, alike on every backend; a segfault is the backend's to see (a signal, not a report)
FAILURES = {
    "shape_mismatch": ("shape", "mat1 and mat2"),
    "syntax_error": ("syntax", "SyntaxError"),
    "no_net": ("no_net", "Net"),
    "import_error": ("import", "fancy_layers_that_do_not_exist"),
    "wrong_output": ("shape", "(2, 7)"),
    "nan_loss": ("nan", "NaN"),
    "runtime_error": ("runtime", "deliberate failure"),
    "segfault": ("killed", "SIGSEGV"),
}
REPORTED_BY = {name: "signal" if name == "segfault" else "runner" for name in FAILURES}


@pytest.mark.parametrize(("name", "backend"), across_backends(REPORTED_BY), indirect=["backend"])
def test_failure_is_classified(backend: Backend, mnist: PreparedDataset, name: str) -> None:
    kind, words = FAILURES[name]
    result = evaluate(backend, mnist, name)
    assert (result["status"], result["kind"]) == ("error", kind), result
    assert words in result["message"]
    assert result["val_accuracy"] is None


# the wall-time kill and the memory limit meet test_hostile.py's loop_in_forward and giant_model
# on every backend
@on_the_default_backend
def test_hang_is_stopped_at_the_time_limit(backend: Backend, mnist: PreparedDataset) -> None:
    started = time.monotonic()
    result = evaluate(backend, mnist, "hang", limits=Limits(timeout_s=15, memory_mb=2048))
    assert result["kind"] == "timeout", result
    assert time.monotonic() - started < 15 + 10


@on_the_default_backend
def test_memory_hog_is_stopped_at_the_memory_limit(
    backend: Backend, mnist: PreparedDataset
) -> None:
    result = evaluate(backend, mnist, "memory_hog", limits=Limits(timeout_s=60, memory_mb=1536))
    assert result["kind"] == "oom", result


@MACHINE_WIDE
def test_fork_bomb_is_contained(backend: Backend, mnist: PreparedDataset) -> None:
    started = time.monotonic()
    result = evaluate(backend, mnist, "fork_bomb", limits=Limits(timeout_s=10, pids=64))
    assert result["status"] == "error"
    assert result["kind"] in ("timeout", "killed", "runtime"), result
    assert time.monotonic() - started < 10 + 15
    # the host still forks fine, and the next candidate runs normally
    assert os.system("true") == 0
    assert evaluate(backend, mnist, "small_cnn")["status"] == "ok"


def test_forged_score_earns_nothing(backend: Backend, mnist: PreparedDataset) -> None:
    result = evaluate(backend, mnist, "forge_score")
    labels = mnist.val_labels()
    guess = float((labels == 3).double().mean())  # what predicting class 3 everywhere earns
    assert result["status"] == "ok", result
    assert result["val_accuracy"] == pytest.approx(guess)
    assert result["val_accuracy"] < 0.25


def test_host_secrets_are_invisible(
    backend: Backend, mnist: PreparedDataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "s3cr3t-" + os.urandom(6).hex()
    monkeypatch.setenv("NASLOOP_TEST_SECRET", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    secret_file = Path("/tmp") / f"nasloop-secret-{os.getpid()}"
    secret_file.write_text(secret)
    try:
        result = evaluate(backend, mnist, "snoop_secrets")
    finally:
        secret_file.unlink()
    assert result["kind"] == "runtime"
    assert "SEEN" in result["message"]  # it really ran and reported what it found
    assert secret not in result["message"] + result["traceback"]


@on_the_default_backend  # the runner's training, not the sandbox, is under test
def test_view_flatten_trains_despite_channels_last(
    backend: Backend, mnist: PreparedDataset
) -> None:
    result = evaluate(backend, mnist, "view_flatten", train={"channels_last": True})
    assert result["status"] == "ok", result
    assert result["val_accuracy"] > 0.5
