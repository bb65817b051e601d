"""The `train_candidate` tool as any caller uses it, and its CLI's answers to bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tools.train_candidate import REFERENCE_NET, train_candidate

pytestmark = pytest.mark.docker


@pytest.fixture
def quick_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox_image: str) -> Path:
    monkeypatch.setenv("NASLOOP_DATASET", "mnist5k")
    monkeypatch.setenv("NASLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NASLOOP_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NASLOOP_SANDBOX", "docker")
    monkeypatch.setenv("NASLOOP_TRAIN_LIMIT", "1000")
    monkeypatch.setenv("NASLOOP_TIMEOUT_S", "120")
    return tmp_path


def test_the_tool_takes_only_code() -> None:
    assert train_candidate.name == "train_candidate"
    assert set(train_candidate.args) == {"code"}
    assert "Net" in train_candidate.description


def test_invoke_trains_in_docker_and_caches(quick_settings: Path) -> None:
    code = REFERENCE_NET.read_text()
    first = train_candidate.invoke({"code": code})
    assert (first["status"], first["dataset"]) == ("ok", "mnist5k")
    assert first["backend"] == "docker-warm"  # the default: a warm container
    assert 0.0 <= first["val_accuracy"] <= 1.0 and first["params"] > 0
    again = train_candidate.invoke({"code": "# reformatted\n" + code})
    assert again["cached"] is True and again["code_hash"] == first["code_hash"]
    assert (quick_settings / "runs" / "eval_cache.sqlite").is_file()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NASLOOP_")}
    return subprocess.run(
        [sys.executable, "-m", "tools.train_candidate", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"NASLOOP_TIMEOUT_S": "-1"}, "NASLOOP_TIMEOUT_S"),
        ({"NASLOOP_DATASET": "imagenet22k"}, "mnist5k"),
        ({"NASLOOP_DATASET": "cifar10", "NASLOOP_DATA_DIR": "/tmp/nasloop-empty"}, "mnist5k"),
        (
            {
                "NASLOOP_DATASET": "mnist5k",
                "NASLOOP_SANDBOX": "docker",
                "DOCKER_HOST": "unix:///nope",
            },
            "start-dockerd",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], words: str, tmp_path: Path) -> None:
    env.setdefault("NASLOOP_DATA_DIR", str(tmp_path))
    done = cli(env)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_auto_sandbox_prefers_docker_and_falls_back_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sandbox_image: str
) -> None:
    from sandbox.backends.select import make_backend

    assert make_backend("auto", sandbox_image).name == "docker"
    assert make_backend("auto", sandbox_image, warm=True).name == "docker-warm"
    monkeypatch.setenv("DOCKER_HOST", "unix:///nope")
    assert make_backend("auto", sandbox_image).name == "process"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING" in last and "process sandbox" in last
