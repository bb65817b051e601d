"""Infrastructure faults on the real Docker engine stop the run, charge no candidate, cache
nothing, and the resumed run completes every iteration exactly once.

Three faults, as users meet them: an image whose Python has no torch (at the start, and swapped in
mid-run), a dataset the sandbox cannot read (mid-run), and the engine itself stopped mid-run (a
private dockerd of this test's own, so that no other user of the shared engine is disturbed).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from sandbox.image import (
    LABEL_HOST_MOUNTS,
    LABEL_KIND,
    LABEL_PYTHON,
    _label_instruction,
    _outermost,
    build_local,
    local_rootfs_tar,
)
from tests.helpers.agent_cli import agent_run, fake_model_env
from tests.helpers.paths import ROOT
from tests.helpers.sandbox_jobs import PRECHECKED

pytestmark = pytest.mark.docker
# Iterations 0 (ok) and 5 need the sandbox, 1-4 are decided on the host or fail in it early (see
# tests/fakes/replies): a fault brought on after the 4th progress line meets candidate 5, at least
# four paced LLM replies later.
ITERATIONS, FAULT_AFTER = "7", "[4/7]"
TEST_TAG = "nasloop-test-infra:latest"  # this file's own tags, never the shared image's
TORCHLESS_TAG = "nasloop-test-infra:torchless"
DOCKERD_FLAGS = ["--iptables=false", "--ip6tables=false", "--bridge=none"]
DOCKERD_FLAGS += ["--storage-driver", "overlay2"]


def torchless_python() -> tuple[str, str]:
    """(interpreter, its prefix) of a host Python that cannot import torch: CI's base one."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    for python in (os.path.realpath(base), "/usr/bin/python3"):
        probe = "import sys\ntry:\n import torch\nexcept ImportError:\n print(sys.prefix)"
        done = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return python, os.path.realpath(done.stdout.strip())
    pytest.fail("no Python without torch on this host to build a torchless image from")


def build_torchless(client: Any, tag: str) -> None:
    """A local-kind image whose interpreter is a host Python without torch."""
    python, prefix = torchless_python()
    labels = {
        LABEL_KIND: "local",
        LABEL_PYTHON: python,
        LABEL_HOST_MOUNTS: json.dumps(_outermost(["/usr", prefix])),
    }
    repository, _, version = tag.partition(":")
    changes = [_label_instruction(labels), "USER 65534:65534", "WORKDIR /tmp"]
    client.api.import_image_from_data(
        local_rootfs_tar(), repository=repository, tag=version, changes=changes
    )


@pytest.fixture
def test_image(docker_client: Any) -> Iterator[str]:
    build_torchless(docker_client, TORCHLESS_TAG)
    yield TEST_TAG
    for tag in (TEST_TAG, TORCHLESS_TAG):
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


def swap_in_torchless(client: Any) -> None:
    """Point TEST_TAG at the torchless image: one quick engine call, even on a busy engine."""
    repository, _, tag = TEST_TAG.partition(":")
    assert client.images.get(TORCHLESS_TAG).tag(repository, tag)


def until_line(proc: subprocess.Popen[str], prefix: str, then: Callable[[], object]) -> list[str]:
    """Read the run's stderr up to a line starting with `prefix`, then do `then`."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(prefix):
            then()
            break
    return seen


@pytest.fixture
def slow_llm_url() -> Iterator[str]:
    """The recorded replies, each after 2 s: the fault lands well before candidate 5 trains."""
    from tests.fakes import MNIST5K_REPLIES
    from tests.helpers.agent_cli import llm_server

    with llm_server(MNIST5K_REPLIES, "--reply-delay", "2") as url:
        yield url


def assert_stopped_cleanly(rc: int, err: str, run_id: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 3, err
    assert "Traceback" not in err, err
    last = lines[-1]
    assert "infrastructure fault" in last and any(w in last for w in words), last
    assert f"python -m agent.run --run-id {run_id}" in last, last
    stops = [line for line in lines if line.startswith(("nasloop: stopped", "Traceback"))]
    assert stops == [last], err  # one line says it all


def cached_hashes(runs: Path) -> set[str]:
    path = runs / "eval_cache.sqlite"
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT code_hash FROM results")}


def assert_nothing_charged(runs: Path, run_id: str, done: int) -> None:
    """`done` finished iterations archived, no row for the one that met the fault, and every
    cached result belongs to an archived candidate."""
    archive = RunArchive(runs / run_id)
    rows = archive.rows()
    assert [r["iteration"] for r in rows] == list(range(done)), rows
    assert not any("torch" in (r["message"] or "") for r in rows)
    assert cached_hashes(runs) <= {r["code_hash"] for r in rows}


def assert_complete_once(runs: Path, run_id: str, n: int) -> None:
    rows = RunArchive(runs / run_id).rows()
    assert [r["iteration"] for r in rows] == list(range(n))  # none lost, none duplicated
    trained = collections.Counter(
        r["code_hash"] for r in rows if not r["cached"] and r["kind"] not in PRECHECKED
    )
    assert trained and max(trained.values()) == 1, trained


def test_a_torchless_image_stops_the_run_before_any_candidate_and_again_mid_run(
    tmp_path: Path, slow_llm_url: str, docker_client: Any, test_image: str
) -> None:
    runs = tmp_path / "runs"
    # one container per candidate: each candidate meets the image the tag names at that moment
    env = fake_model_env(
        tmp_path, slow_llm_url, NASLOOP_IMAGE=test_image, NASLOOP_WARM_WORKER="false"
    )
    args = ("--run-id", "t", "--iterations", ITERATIONS, "--json")

    swap_in_torchless(docker_client)
    first = agent_run(env, *args)
    _, err = first.communicate(timeout=600)
    assert_stopped_cleanly(first.returncode, err, "t", "torch")
    assert "self-test" in err
    assert_nothing_charged(runs, "t", 0)

    build_local(docker_client, test_image)  # the fix: an image of the Python that has torch
    second = agent_run(env, *args)
    seen = until_line(second, FAULT_AFTER, lambda: swap_in_torchless(docker_client))
    _, err = second.communicate(timeout=600)
    assert_stopped_cleanly(second.returncode, "".join(seen) + err, "t", "torch")
    assert_nothing_charged(runs, "t", 5)

    build_local(docker_client, test_image)
    third = agent_run(env, *args)
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
    assert json.loads(out)["iterations"] == 7
    assert_complete_once(runs, "t", 7)


def test_a_dataset_the_sandbox_cannot_read_stops_the_run_mid_way(
    tmp_path: Path, slow_llm_url: str, sandbox_image: str
) -> None:
    runs = tmp_path / "runs"
    env = fake_model_env(tmp_path, slow_llm_url)  # the warm worker, the default
    args = ("--run-id", "d", "--iterations", ITERATIONS, "--json")
    first = agent_run(env, *args)
    saved: dict[Path, bytes] = {}

    def spoil() -> None:
        [images] = (tmp_path / "data").glob("prepared/*/public/train_images.pt")
        saved[images] = images.read_bytes()
        images.write_bytes(b"\0" * 4096)

    seen = until_line(first, FAULT_AFTER, spoil)
    _, err = first.communicate(timeout=600)
    assert_stopped_cleanly(first.returncode, "".join(seen) + err, "d", "train_images.pt")
    assert_nothing_charged(runs, "d", 5)

    [(images, content)] = saved.items()
    images.write_bytes(content)
    second = agent_run(env, *args)
    _out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert_complete_once(runs, "d", 7)


@contextlib.contextmanager
def private_dockerd() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(DOCKER_HOST, start, stop) of an engine of our own: own socket, data, state and pid file."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.fail("the engine-loss test needs root and dockerd (bash .ci/start-dockerd)")
    base = Path(tempfile.mkdtemp(prefix="nlt-", dir="/tmp"))
    host = f"unix://{base}/d.sock"
    command = [dockerd, "--host", host, "--data-root", str(base / "root")]
    command += ["--exec-root", str(base / "x"), "--pidfile", str(base / "d.pid"), *DOCKERD_FLAGS]
    engine: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        log = (base / "dockerd.log").open("ab")
        engine.append(subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True))
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", host, "info"], capture_output=True).returncode:
            assert engine[-1].poll() is None, (base / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "private dockerd did not answer in 60 s"
            time.sleep(0.2)

    def stop() -> None:
        proc = engine[-1]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # as `systemctl stop docker` does
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    try:
        yield host, start, stop
    finally:
        if engine:
            subprocess.run(["docker", "-H", host, "rm", "-f", "-v"], capture_output=True)
            stop()
        mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounted if m.startswith(str(base))), reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_the_engine_stopped_mid_run_stops_it_in_one_line_and_the_run_resumes(
    tmp_path: Path, slow_llm_url: str
) -> None:
    runs = tmp_path / "runs"
    with private_dockerd() as (host, start, stop):
        start()
        build = subprocess.run(
            [sys.executable, "-m", "sandbox.image", "build", "--kind", "local"],
            cwd=ROOT,
            env={**os.environ, "DOCKER_HOST": host},
            capture_output=True,
            text=True,
        )
        assert build.returncode == 0, build.stderr
        env = fake_model_env(tmp_path, slow_llm_url, DOCKER_HOST=host)  # the warm worker
        args = ("--run-id", "e", "--iterations", ITERATIONS, "--json")
        first = agent_run(env, *args)

        def stop_while_paused() -> None:
            # A stopping engine still answers while it stops its containers (up to their stop
            # timeout): the run is paused meanwhile, so that it next meets the engine gone.
            first.send_signal(signal.SIGSTOP)
            try:
                stop()
            finally:
                first.send_signal(signal.SIGCONT)

        seen = until_line(first, FAULT_AFTER, stop_while_paused)
        _, err = first.communicate(timeout=600)
        rc, err = first.returncode, "".join(seen) + err
        assert_stopped_cleanly(rc, err, "e", "start-dockerd", "docker info", "Docker engine")
        done = len(RunArchive(runs / "e").rows())
        assert done == 5
        assert_nothing_charged(runs, "e", done)

        start()
        second = agent_run(env, *args)
        _out, err = second.communicate(timeout=600)
        assert second.returncode == 0, err
        assert "self-test passed" in err
        assert_complete_once(runs, "e", 7)
