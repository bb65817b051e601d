"""`python -m agent.run` as a user runs it: a real HTTP LLM server, the real Docker sandbox.

The LLM server is the test's own OpenAI-compatible server (tests/fakes) replaying recorded replies
of a small local model: good nets, a shape error, a syntax slip, prose without code, a net named
`Model`, and one duplicate that differs only in comments.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from sandbox.backends.docker import JOB_LABEL, OWNER_LABEL, parse_owner_label
from tests.helpers.agent_cli import agent_run, fake_model_env
from tests.helpers.paths import ROOT
from tests.helpers.sandbox_jobs import PRECHECKED

pytestmark = pytest.mark.docker


def test_killed_run_resumes_to_an_exact_archive(
    tmp_path: Path, paced_llm_url: str, docker_client: Any, sandbox_image: str
) -> None:
    env = fake_model_env(tmp_path, paced_llm_url)  # >= 1 s per iteration: 5 left outlast the kill
    args = ("--run-id", "r1", "--iterations", "9", "--json")
    first = agent_run(env, *args)
    assert first.stderr is not None
    seen = []
    for line in first.stderr:  # progress lines: "[n/9] best ... | last ..."
        seen.append(line)
        if line.startswith("[4/9]"):
            break
    time.sleep(random.uniform(0.0, 3.0))  # somewhere in the next LLM call or training
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert any(line.startswith("[4/9]") for line in seen), "".join(seen)
    archive = RunArchive(tmp_path / "runs" / "r1")
    assert 4 <= len(archive.rows()) < 9

    second = agent_run(env, *args)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert "resuming run r1" in err
    summary = json.loads(out)
    assert summary["run_id"] == "r1" and summary["iterations"] == 9
    assert {"best_val_accuracy", "success_rate", "best_code_path"} <= set(summary)
    assert summary["best_val_accuracy"] is not None
    assert Path(summary["best_code_path"]).is_file()

    rows = archive.rows()
    assert [r["iteration"] for r in rows] == list(range(9))  # none lost, none duplicated
    trained = collections.Counter(
        r["code_hash"] for r in rows if not r["cached"] and r["kind"] not in PRECHECKED
    )
    assert trained and max(trained.values()) == 1, trained  # no identical candidate trained twice
    # the recorded duplicate (reply 6 repeats reply 0 with other comments) came from the cache
    assert rows[6]["cached"] == 1 and rows[6]["code_hash"] == rows[0]["code_hash"]
    kinds = [r["kind"] for r in rows]
    assert {"ok", "shape", "syntax", "no_code", "no_net"} <= set(kinds)
    # triples: every iteration after the first closes the advice given after the one before
    for before, row in itertools.pairwise(rows):
        triple = json.loads(row["closed_triple"])
        assert triple["suggestion"] == before["next_suggestion"]
        assert triple["iteration"] == row["iteration"]
    # nothing left by either process, not even by the one killed in the middle of a training
    owners = {(socket.gethostname(), p.pid) for p in (first, second)}
    containers = docker_client.containers.list(all=True, filters={"label": JOB_LABEL})
    labels = [parse_owner_label(c.labels.get(OWNER_LABEL, "")) for c in containers]
    assert [label for label in labels if label and label[:2] in owners] == []


@pytest.mark.parametrize(
    ("args", "extra", "words"),
    [
        (("--dataset", "imagenet22k"), {}, "mnist5k"),
        (("--history-k", "0"), {}, "NASLOOP_HISTORY_K"),
        ((), {"NASLOOP_GENERATOR_BASE_URL": "http://127.0.0.1:9/v1"}, "NASLOOP_GENERATOR_BASE_URL"),
        ((), {"NASLOOP_SANDBOX": "docker", "DOCKER_HOST": "unix:///nope"}, "start-dockerd"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, llm_url: str, args: tuple[str, ...], extra: dict[str, str], words: str
) -> None:
    done = agent_run(fake_model_env(tmp_path, llm_url, **extra), *args)
    _out, err = done.communicate(timeout=120)
    assert done.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0] and words in lines[0], err
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())


def test_graph_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # the dependencies come from the environment running the tests (itself a venv in CI, whose
    # base has none of them: --system-site-packages would reach the base, not this one)
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    theirs = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(theirs) / "parent-env.pth").write_text("\n".join(sorted(ours)) + "\n")
    pip = [str(py), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)]
    subprocess.run(pip, check=True, cwd=tmp_path, timeout=300)
    probe = "from graphs.nas import graph; print(sorted(graph.nodes))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NASLOOP_")}
    done = subprocess.run(
        [str(py), "-c", probe], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['__start__', 'generate', 'improve', 'setup', 'train']"


def test_a_live_run_is_not_resumed_twice_and_two_runs_share_a_runs_dir(
    tmp_path: Path, llm_url: str, sandbox_image: str
) -> None:
    env = fake_model_env(tmp_path, llm_url)
    # long enough that it is still running when the duplicate has started (a few seconds)
    first = agent_run(env, "--run-id", "a", "--iterations", "24", "--json")
    assert first.stderr is not None
    for line in first.stderr:
        if line.startswith("[1/24]"):
            break
    duplicate = agent_run(env, "--run-id", "a", "--iterations", "24")
    _, err = duplicate.communicate(timeout=120)
    assert duplicate.returncode == 2, err
    assert "run a is already running" in err and len(err.strip().splitlines()) == 1
    other = agent_run(env, "--run-id", "b", "--iterations", "2", "--json")
    out_a, err_a = first.communicate(timeout=600)
    out_b, err_b = other.communicate(timeout=600)
    assert (first.returncode, other.returncode) == (0, 0), err_a + err_b
    assert json.loads(out_a)["iterations"] == 24 and json.loads(out_b)["iterations"] == 2
    for run_id, n in (("a", 24), ("b", 2)):
        rows = RunArchive(tmp_path / "runs" / run_id).rows()
        assert [r["iteration"] for r in rows] == list(range(n))
