"""The export: a standalone best_net.py, and settings that load back exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.archive.candidates import RunArchive
from agent.results.export import env_line, export_run
from agent.settings import Settings
from sandbox.data import PreparedDataset
from sandbox.result import new_result

# A candidate as a small model writes it: a docstring and a __future__ import first, which
# nothing may precede but comments.
BEST = '''"""A small CNN."""
from __future__ import annotations

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8 * 14 * 14, num_classes)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))
'''
WORSE = "import torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n"


def make_run(run_dir: Path, mnist: PreparedDataset) -> None:
    archive = RunArchive(run_dir)
    for i, (code, acc) in enumerate([(WORSE, 0.2), (BEST, 0.6), (WORSE, 0.2)]):
        result = dict(new_result("ok", "trained", f"h{i}", val_accuracy=acc, params=1000 * i))
        result["dataset"] = "mnist5k"
        archive.record_candidate(i, code, result)
    settings = Settings(dataset="cifar10", data_dir=mnist.root.parent.parent, train_limit=500)
    data = settings.model_dump(mode="json")
    del data["generator_api_key"]
    (run_dir / "settings.json").write_text(json.dumps(data))


def test_best_net_imports_alone_and_trains(mnist: PreparedDataset, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, mnist)
    out = export_run(run_dir)
    assert out == run_dir / "export"
    source = (out / "best_net.py").read_text()
    assert "iteration 1" in source and "0.6000" in source and BEST.strip() in source
    assert not (out / "best_net.pt").exists()  # no final test: no weights
    check = (
        "import torch, best_net, sys\n"
        "net = best_net.Net()\n"
        "assert best_net.NASLOOP_INPUT['input_shape'] == [1, 28, 28]\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))\n"
        "losses = []\n"
        "for _ in range(20):\n"
        "    loss = torch.nn.functional.cross_entropy(net(x), y)\n"
        "    opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())\n"
        "assert losses[-1] < losses[0], losses\n"
        "assert not any(m.split('.')[0] in ('agent', 'sandbox') for m in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=out,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_settings_round_trip_and_the_dataset_that_actually_ran(
    mnist: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, mnist)
    out = export_run(run_dir)
    assert out is not None
    stored = json.loads((run_dir / "settings.json").read_text())
    exported = json.loads((out / "settings.json").read_text())
    assert exported == {**stored, "dataset": "mnist5k"}  # cifar10 fell back to mnist5k
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / ".env").write_text((out / "reproduce.env").read_text())
    monkeypatch.chdir(tmp_path / "work")
    again = Settings().model_dump(mode="json")
    assert {k: again[k] for k in exported} == exported


@pytest.mark.parametrize(
    "text",
    ["", "plain", "at most 1M params, no attention", 'it\'s "quoted" \\ and\nmultiline #x'],
)
def test_any_constraints_text_survives_the_env_file(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(env_line("constraints", text) + "\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().constraints == text


def test_nothing_to_export_when_nothing_trained(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "run")
    archive.record_candidate(0, "x", dict(new_result("syntax", "bad", "h")))
    (tmp_path / "run" / "settings.json").write_text("{}")
    assert export_run(tmp_path / "run") is None
    assert not (tmp_path / "run" / "export").exists()
