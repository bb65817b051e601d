"""Hardware limits, the held-out view and the runner's measurements, without a sandbox.

A scripted backend writes what the runner would have written (report, predictions, weights); the
real runner's measuring functions run here on a tiny net.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from agent.prompts import constraints_text, generator_messages
from agent.settings import Settings
from sandbox.backends.base import Job, Limits
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator, held_out_evaluator
from sandbox.hardware import HardwareLimits, violations
from sandbox.held_out import held_out_view
from sandbox.inside import runner
from tests.helpers.sandbox_jobs import NET, ScriptedBackend


def trained(labels: list[int], **report: Any) -> Callable[[Job], None]:
    """A job that 'trained' and predicted `labels`, with `report`'s measurements."""

    def act(job: Job) -> None:
        full = {"status": "ok", "params": 1000, "flops": 5000, "timings": {"train_s": 1.0}}
        (job.out_dir / "report.json").write_text(json.dumps(full | report))
        (job.out_dir / "predictions.json").write_text(json.dumps(labels))

    return act


def evaluator(mnist: PreparedDataset, act: Callable[[Job], None], **kw: Any) -> Evaluator:
    return Evaluator(mnist, ScriptedBackend(act), {}, Limits(timeout_s=9), **kw)


def test_violations_name_the_numbers_and_an_unmeasured_metric_counts() -> None:
    limits = HardwareLimits(max_params=50_000, max_latency_ms=2.0)
    assert violations(limits, {"params": 50_000, "latency_ms": 2.0}) == []
    found = violations(limits, {"params": 106_154, "latency_ms": 2.5})
    assert found == ["106,154 params > 50,000 max", "2.50 ms latency > 2.00 max"]
    assert violations(limits, {"params": 10}) == ["latency_ms not measured (max 2.00 ms latency)"]
    assert violations(HardwareLimits(), {"params": 10**9}) == []


def test_over_a_limit_is_a_failure_with_the_numbers_and_the_accuracy_kept(
    mnist: PreparedDataset,
) -> None:
    labels = mnist.val_labels().tolist()
    act = trained(labels, params=80_000, latency_ms=1.5, peak_memory_mb=300.0)
    result = evaluator(mnist, act, hardware=HardwareLimits(max_params=50_000)).evaluate(NET)
    assert (result["status"], result["kind"]) == ("error", "over_limit")
    assert "80,000 params > 50,000 max" in result["message"]
    assert result["val_accuracy"] == 1.0  # for the Pareto front; it does not count as a success
    assert (result["latency_ms"], result["peak_memory_mb"]) == (1.5, 300.0)
    # Within the limit by its own report only: a scripted backend has no fresh sandbox to measure
    # the net in (sandbox/verify.py), and a self-reported figure never passes a limit.
    within = evaluator(mnist, act, hardware=HardwareLimits(max_params=80_000)).evaluate(NET)
    assert within["kind"] == "over_limit" and within["latency_ms"] == 1.5
    assert "params cannot be verified (only self-reported: this backend has no" in within["message"]
    assert within["measured_by"]["params"] == "self-reported"


def test_limits_are_part_of_the_cache_key_only_when_set(mnist: PreparedDataset) -> None:
    plain = evaluator(mnist, trained([])).fingerprint()
    assert "hardware" not in plain  # results cached before limits existed stay valid
    a = evaluator(mnist, trained([]), hardware=HardwareLimits(max_params=10)).fingerprint()
    b = evaluator(mnist, trained([]), hardware=HardwareLimits(max_params=20)).fingerprint()
    assert len({plain, a, b}) == 3


def test_the_generator_is_told_the_limits() -> None:
    limits = HardwareLimits(max_params=50_000, max_flops=2_000_000, max_latency_ms=3)
    text = constraints_text("no attention layers", limits)
    assert text.startswith("no attention layers\nHard limits: at most 50,000 parameters")
    assert "2.00M FLOPs" in text and "at most 3 ms" in text
    assert constraints_text("", HardwareLimits()) == ""
    task: Any = {"dataset": "mnist5k", "input_shape": [1, 28, 28], "num_classes": 10}
    settings = Settings(max_params=50_000)
    messages = generator_messages(
        task,
        best=None,
        last=None,
        suggestion="",
        window=[],
        constraints=constraints_text(settings.constraints, settings.hardware_limits()),
    )
    assert "## Constraints\nHard limits: at most 50,000 parameters" in str(messages[-1].content)


def test_the_held_out_view_puts_test_images_where_validation_was(mnist: PreparedDataset) -> None:
    view = held_out_view(mnist)
    assert view.root.parent == mnist.root and mnist.public_dir not in view.root.parents
    assert sorted(p.name for p in view.public_dir.iterdir()) == [
        "meta.json",
        "train_images.pt",
        "train_labels.pt",
        "val_images.pt",
    ]
    assert torch.equal(torch.load(view.public_dir / "val_images.pt"), mnist.test_images())
    assert torch.equal(view.val_labels(), mnist.test_labels())
    assert torch.equal(
        torch.load(view.public_dir / "train_images.pt"),
        torch.load(mnist.public_dir / "train_images.pt"),
    )
    assert view.n_val == mnist.n_test and view.num_classes == mnist.num_classes
    # the search's public half is untouched: no test file ever lands there
    assert sorted(p.name for p in mnist.public_dir.iterdir()) == [
        "meta.json",
        "train_images.pt",
        "train_labels.pt",
        "val_images.pt",
    ]
    assert held_out_view(mnist).root == view.root  # built once


def test_the_final_evaluator_scores_on_test_and_keeps_weights(
    mnist: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = Evaluator(
        mnist,
        ScriptedBackend(trained([])),
        {"epochs": 1, "seed": 3},
        Limits(timeout_s=100),
        hardware=HardwareLimits(max_params=1),
    )
    test_labels = mnist.test_labels().tolist()

    def act(job: Job) -> None:
        trained(test_labels)(job)
        torch.save({"w": torch.ones(3)}, job.out_dir / "weights.pt")

    backend = ScriptedBackend(act)
    monkeypatch.setattr("sandbox.backends.select.make_backend", lambda *a, **k: backend)
    final = held_out_evaluator(search, Settings(sandbox="process"), 3, tmp_path / "w")
    assert final.cache is None and final.limits.timeout_s == 300
    assert final.train_config["epochs"] == 3 and final.train_config["save_weights"] is True
    result = final.evaluate(NET)
    assert result["kind"] == "ok" and result["val_accuracy"] == 1.0  # test labels, host-side
    (job,) = backend.jobs
    assert job.data_dir == held_out_view(mnist).public_dir
    kept = tmp_path / "w" / f"{result['code_hash']}.pt"
    assert torch.load(kept, weights_only=True)["w"].tolist() == [1.0, 1.0, 1.0]


def test_oversized_or_linked_weights_are_not_kept(tmp_path: Path) -> None:
    from sandbox import evaluate

    big = tmp_path / "big.pt"
    with big.open("wb") as f:
        f.truncate(evaluate.MAX_WEIGHTS_MB * 2**20 + 1)
    assert not evaluate.keep_weights(big, tmp_path / "out" / "a.pt")
    secret = tmp_path / "secret"
    secret.write_text("host file")
    link = tmp_path / "weights.pt"
    link.symlink_to(secret)
    assert not evaluate.keep_weights(link, tmp_path / "out" / "b.pt")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> Any:
        return self.fc(self.conv(x).mean((2, 3)))


def test_the_runner_measures_latency_and_memory_and_saves_bounded_weights(tmp_path: Path) -> None:
    cfg = {**runner.DEFAULTS, "latency_runs": 5}
    net = Tiny().to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    latency = runner.latency_ms(net, cfg, torch.randn(1, 1, 28, 28), cpu)
    assert 0 < latency < 1000
    assert runner.peak_memory_mb(cpu) > 10  # the process's resident peak, in MiB
    path = str(tmp_path / "weights.pt")
    runner.save_weights(net, path, max_mb=1)
    state = torch.load(path, weights_only=True)
    fresh = Tiny()
    fresh.load_state_dict(state)
    assert all(t.is_contiguous() for t in state.values())
    runner.save_weights(net, str(tmp_path / "none.pt"), max_mb=1e-6)
    assert not (tmp_path / "none.pt").exists()
