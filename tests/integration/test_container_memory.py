"""Peak memory read by the host on the Docker backends (sandbox/backends/container_memory.py).

hold_memory.py holds HELD_MB of written memory through training. The host's figure must show it
(from the job's cgroup, never the candidate's report), on a container per job (the per-job parent
cgroup) and in the warm worker (its container's cgroup, reset before each job); and the parent
cgroup made for a container must be gone after the job, a timed-out one included, or, if its
owner was killed first, once the next backend connects. The same
engine reached over TCP, as a remote one would be, gives no figure: a peak-memory limit then
fails as "cannot be verified" instead of trusting the report.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.backends.base import Backend, Job, Limits
from sandbox.backends.cgroup import ROOT
from sandbox.backends.container_memory import PARENT_PREFIX, JobParent
from sandbox.backends.docker import DockerBackend
from sandbox.backends.workdir import owner_tag
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.hardware import HardwareLimits
from tests.helpers.sandbox_jobs import QUICK, limits, source

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

HELD_MB = 300
LIMITS = limits(timeout_s=180)


@pytest.fixture(params=["docker", "docker-warm"])
def docker_backend(request: pytest.FixtureRequest, sandbox_image: str) -> Backend:
    if request.param == "docker":
        return DockerBackend(image=sandbox_image)
    warm: Backend = request.getfixturevalue("warm_backend")
    return warm


@pytest.fixture
def parents(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[JobParent]]:
    """Every per-job parent cgroup made during the test."""
    made: list[JobParent] = []
    create = JobParent.create.__func__  # type: ignore[attr-defined]

    def recording(cls: type[JobParent], *args: Any, **kwargs: Any) -> JobParent | None:
        parent: JobParent | None = create(cls, *args, **kwargs)
        if parent is not None:
            made.append(parent)
        return parent

    monkeypatch.setattr(JobParent, "create", classmethod(recording))
    yield made


def holding(megabytes: int) -> str:
    return source("hold_memory").replace("MEGABYTES = 300", f"MEGABYTES = {megabytes}", 1)


def test_the_host_reads_what_a_job_held(
    docker_backend: Backend, mnist: PreparedDataset, parents: list[JobParent]
) -> None:
    evaluator = Evaluator(mnist, docker_backend, dict(QUICK), LIMITS)
    # The large one first: a library read from disk for the first time is charged to the job
    # that read it, which can only make the first figure larger, never the second.
    large: dict[str, Any] = dict(evaluator.evaluate(holding(HELD_MB)))
    small: dict[str, Any] = dict(evaluator.evaluate(holding(0)))
    for result in (large, small):
        print(f"{docker_backend.name} | {result['peak_memory_mb']:.1f} MiB | {result['message']}")
        assert result["kind"] == "ok", result
        assert result["measured_by"]["peak_memory_mb"] == "cgroup", result
    assert large["peak_memory_mb"] > HELD_MB
    assert large["peak_memory_mb"] - small["peak_memory_mb"] > 0.8 * HELD_MB, (large, small)
    if docker_backend.name == "docker":  # one parent per job, each gone with its job
        assert len(parents) == 2 and all(p.groups() == [] for p in parents), parents


def test_a_timed_out_jobs_parent_cgroup_is_removed(
    sandbox_image: str, tmp_path: Path, parents: list[JobParent]
) -> None:
    job_dir, data_dir, out_dir = tmp_path / "job", tmp_path / "data", tmp_path / "out"
    job_dir.mkdir()
    data_dir.mkdir()
    # 64 MiB written, then no end: the wall-time limit has to kill it
    (job_dir / "runner.py").write_text("b = bytearray(64 * 2**20)\nwhile True:\n    pass\n")
    outcome = DockerBackend(image=sandbox_image).run(
        Job(job_dir, data_dir, out_dir, Limits(timeout_s=4, memory_mb=512))
    )
    assert outcome.timed_out, outcome
    assert outcome.peak_memory_mb is not None and outcome.peak_memory_mb > 64, outcome
    assert len(parents) == 1, parents
    assert parents[0].groups() == [], f"left behind: {parents[0].groups()}"


def test_a_killed_owners_parent_cgroup_is_reaped_by_the_next_backend(sandbox_image: str) -> None:
    gone = subprocess.Popen(["sleep", "60"])
    dead_tag = owner_tag(gone.pid)
    gone.kill()
    gone.wait()
    memory = ROOT if (ROOT / "cgroup.controllers").exists() else ROOT / "memory"
    stale = memory / f"{PARENT_PREFIX}{dead_tag}-0bad0bad"
    live = memory / f"{PARENT_PREFIX}{owner_tag()}-0cafe0ca"  # ours: this process runs
    for group in (stale, live):
        group.mkdir()
    try:
        DockerBackend(image=sandbox_image).check()  # a new backend's first connection
        assert not stale.exists(), "a parent cgroup of a killed owner was left"
        assert live.exists(), "a live owner's parent cgroup was removed"
    finally:
        for group in (stale, live):
            if group.exists():
                group.rmdir()


@pytest.fixture
def engine_over_tcp(docker_client: Any) -> Iterator[Any]:
    """A client of the real engine through a TCP port on 127.0.0.1 (a plain byte relay to its
    unix socket): to the backends, an engine on another host."""
    unix_path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(unix_path)
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    remote = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", timeout=60)
    yield remote
    remote.close()
    listener.close()


@pytest.mark.parametrize("kind", ["docker", "docker-warm"])
def test_an_engine_elsewhere_leaves_peak_memory_unverified(
    engine_over_tcp: Any, sandbox_image: str, mnist: PreparedDataset, kind: str
) -> None:
    from sandbox.backends.warm import WarmDockerBackend

    if kind == "docker":
        backend: Backend = DockerBackend(image=sandbox_image, client=engine_over_tcp)
    else:
        backend = WarmDockerBackend(image=sandbox_image, client=engine_over_tcp)
    limit = HardwareLimits(max_peak_memory_mb=10**6)  # one any honest net meets
    try:
        evaluator = Evaluator(mnist, backend, dict(QUICK), LIMITS, hardware=limit)
        result: dict[str, Any] = dict(evaluator.evaluate(holding(0)))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    assert result["kind"] == "over_limit", result
    assert result["measured_by"]["peak_memory_mb"] == "self-reported", result
    assert "peak_memory_mb cannot be verified" in result["message"], result
