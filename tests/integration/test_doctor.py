"""`python -m agent.doctor` against a healthy setup, then one broken part at a time: the right
line fails, with its fix, and the exit code says so (0 ok, 1 warnings, 2 errors).

Healthy: the test's OpenAI-compatible server (tests/fakes/openai_server.py), the Docker sandbox,
the offline dataset mnist5k.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.doctor import sandbox_gpu_count
from sandbox.backends.base import Limits
from sandbox.backends.docker import DockerBackend
from sandbox.data import prepare
from sandbox.evaluate import Evaluator
from sandbox.image import (
    LABEL_HOST_MOUNTS,
    LABEL_KIND,
    LABEL_PYTHON,
    _label_instruction,
    host_mounts,
    local_rootfs_tar,
)
from sandbox.settings import load_settings
from tests.helpers.agent_cli import fake_model_env, llm_server
from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group(__name__)]

REPLIES = ROOT / "tests" / "fakes" / "replies" / "mnist5k.json"
NO_TORCH_IMAGE = "nasloop-doctor-test:no-torch"


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    with llm_server(REPLIES) as url:
        yield url


Lines = dict[str, tuple[str, str]]  # part -> (status, detail and fix)


def doctor(env: dict[str, str], *args: str, module: str = "agent.doctor") -> tuple[int, Lines]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines: Lines = {}
    for line in done.stdout.splitlines()[:-1]:  # the last one is the summary
        status, _, rest = line.partition(" ")
        part, _, detail = rest.strip().partition(": ")
        lines[part] = (status, detail)
    assert done.stdout.splitlines()[-1].startswith("doctor: "), done.stdout + done.stderr
    return done.returncode, lines


def healthy_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return fake_model_env(tmp_path, url, **{"NASLOOP_GPUS": "none", **extra})


def assert_only_failure(
    lines: Lines, part: str, status: str, *words: str, also: tuple[str, ...] = ()
) -> None:
    """`part` has `status` and says each of `words`; every other line but `also` is ok."""
    assert lines[part][0] == status, lines[part]
    for word in words:
        assert word in lines[part][1], (word, lines[part])
    others = {p: v for p, v in lines.items() if p not in (part, *also) and v[0] != "ok"}
    assert not others, others


def test_a_healthy_setup_is_all_ok(tmp_path: Path, llm_url: str, sandbox_image: str):
    code, lines = doctor(healthy_env(tmp_path, llm_url))
    assert code == 0, lines
    assert set(lines) == {
        "settings",
        "llm generator",
        "llm improver",
        "dataset",
        "gpu on host",
        "sandbox",
        "sandbox self-test",
        "gpu in sandbox",
    }
    assert all(status == "ok" for status, _ in lines.values()), lines
    assert (
        "serves fake-generator, fake-improver; a 4-token completion took"
        in (lines["llm generator"][1])
    )
    assert lines["dataset"][1].startswith("present: mnist5k")
    assert lines["sandbox"][1].startswith("docker, image nasloop-sandbox:latest")
    assert lines["sandbox self-test"][1].startswith("a known-good tiny net trained in")


def test_agent_run_check_is_the_same_doctor_with_the_run_flags(
    tmp_path: Path, llm_url: str, sandbox_image: str
):
    env = healthy_env(tmp_path, llm_url)
    code, lines = doctor(env, "--check", "--generator-model", "nope", module="agent.run")
    assert code == 2
    assert_only_failure(lines, "llm generator", "error", "'nope'")
    assert not (tmp_path / "runs").exists()  # a check writes no run


def test_no_server(tmp_path: Path, sandbox_image: str):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        code, lines = doctor(healthy_env(tmp_path, dead))
    assert code == 2
    assert_only_failure(
        lines, "llm generator", "error", f"no OpenAI-compatible server answers at {dead}",
        "fix: start one (`python -m agent serve`", "or set NASLOOP_GENERATOR_BASE_URL",
        also=("llm improver",),
    )  # fmt: skip
    assert lines["llm improver"][0] == "error"  # it shares the generator's server


def test_wrong_model_id(tmp_path: Path, llm_url: str, sandbox_image: str):
    env = healthy_env(tmp_path, llm_url, NASLOOP_IMPROVER_MODEL="qwen-coder")
    code, lines = doctor(env)
    assert code == 2
    assert_only_failure(
        lines, "llm improver", "error", "a completion with model 'qwen-coder' failed (HTTP 404",
        "fix: set NASLOOP_IMPROVER_MODEL to one it serves (fake-generator, fake-improver)",
    )  # fmt: skip


def test_no_engine(tmp_path: Path, llm_url: str):
    env = healthy_env(tmp_path, llm_url, NASLOOP_SANDBOX="docker")
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    code, lines = doctor(env)
    assert code == 2
    assert lines["sandbox"][0] == "error"
    assert "fix: start the engine" in lines["sandbox"][1]
    assert "NASLOOP_SANDBOX=process" in lines["sandbox"][1]
    assert lines["sandbox self-test"] == ("error", "not run: no sandbox -> fix: see the line above")
    broken = {p for p, (s, _) in lines.items() if s != "ok"}
    assert broken == {"sandbox", "sandbox self-test"}


def test_an_image_tag_that_does_not_exist(tmp_path: Path, llm_url: str, sandbox_image: str):
    env = healthy_env(tmp_path, llm_url, NASLOOP_IMAGE="nasloop-sandbox:no-such-tag")
    code, lines = doctor(env)
    assert code == 2
    assert lines["sandbox"][0] == "error" and "nasloop-sandbox:no-such-tag" in lines["sandbox"][1]
    assert "python -m sandbox.image build" in lines["sandbox"][1]


@pytest.fixture
def no_torch_image(docker_client: Any, sandbox_image: str) -> Iterator[str]:
    """Our local image, but its interpreter is the system Python, which has no torch."""
    python = "/usr/bin/python3.11"
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, f"{python} has torch: pick an interpreter without it"
    labels = {
        LABEL_KIND: "local",
        LABEL_PYTHON: python,
        LABEL_HOST_MOUNTS: json.dumps(host_mounts()),
    }
    repository, tag = NO_TORCH_IMAGE.split(":")
    docker_client.api.import_image_from_data(
        local_rootfs_tar(),
        repository=repository,
        tag=tag,
        changes=[_label_instruction(labels), "USER 65534:65534", "WORKDIR /tmp"],
    )
    yield NO_TORCH_IMAGE
    docker_client.images.remove(NO_TORCH_IMAGE, force=True)


def test_a_sandbox_whose_interpreter_has_no_torch_fails_the_self_test(
    tmp_path: Path, llm_url: str, no_torch_image: str
):
    env = healthy_env(tmp_path, llm_url, NASLOOP_IMAGE=no_torch_image, NASLOOP_WARM_WORKER="false")
    code, lines = doctor(env)
    assert code == 2
    # what failed (torch cannot be imported) and what to do, whichever words the self-test uses
    assert_only_failure(lines, "sandbox self-test", "error", "torch", " -> fix: ")


def test_a_missing_dataset(tmp_path: Path, llm_url: str, sandbox_image: str):
    missing = tmp_path / "no-such-folder"
    env = healthy_env(tmp_path, llm_url, NASLOOP_DATASET=f"folder:{missing}")
    code, lines = doctor(env)
    assert code == 2
    assert_only_failure(
        lines,
        "dataset",
        "error",
        f"image folder {missing} does not exist",
        "fix: fix NASLOOP_DATASET",
    )


def test_the_gpu_probe_reports_what_a_candidate_sees_in_the_sandbox(
    tmp_path: Path, sandbox_image: str
):
    dataset = prepare("mnist5k", tmp_path / "data")
    limits = Limits(timeout_s=120, memory_mb=4096, pids=256, scratch_mb=256, gpus=())
    config = load_settings().train_config()
    evaluator = Evaluator(dataset, DockerBackend(sandbox_image), config, limits, cache=None)
    assert sandbox_gpu_count(evaluator) == 0  # this machine has no GPU to give
