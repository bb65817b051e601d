"""Shared fixtures for integration tests that need real services (here: the Docker engine).

Docker tests never skip: a missing engine is an error with the fix in its message, so CI cannot
go green without having exercised the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.sandbox_jobs import BACKENDS


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"Docker engine not reachable ({exc}): start it with `sudo .ci/start-dockerd`, "
            "or deselect these tests with -m 'not docker'",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> str:
    """The sandbox image's tag; built (local kind, about a second) when missing or stale."""
    from sandbox.image import DEFAULT_TAG, build_local, image_info

    try:
        info = image_info(docker_client, DEFAULT_TAG)
    except ValueError:  # a tag without our labels: replace it
        info = None
    if info is None or info.missing_mounts():
        build_local(docker_client, DEFAULT_TAG)
    return DEFAULT_TAG


@pytest.fixture
def nothing_left_behind(docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After the test, nothing of this process's sandbox jobs may remain on the host: no
    container, no sandbox-uid process, no cgroup (a process job's, or the parent a container was
    put under), no job dir, no out-dir mount.

    Owner-scoped (see tests/helpers/leftovers.py), so that a concurrent test run's jobs on
    the same machine never fail this test, nor ours theirs.
    """
    from sandbox.backends.cgroup import Cgroup
    from sandbox.backends.container_memory import JobParent
    from tests.helpers import leftovers

    ours: list[str] = []  # names of the cgroups this process made (process jobs, container parents)
    create = Cgroup.create.__func__  # type: ignore[attr-defined]
    create_parent = JobParent.create.__func__  # type: ignore[attr-defined]

    def recording_create(cls: type[Cgroup], *args: Any, **kwargs: Any) -> Cgroup | None:
        group: Cgroup | None = create(cls, *args, **kwargs)
        if group is not None:
            ours.extend(d.name for d in group.dirs)
        return group

    def recording_parent(cls: type[JobParent], *args: Any, **kwargs: Any) -> JobParent | None:
        parent: JobParent | None = create_parent(cls, *args, **kwargs)
        if parent is not None:
            ours.append(parent.name)
        return parent

    monkeypatch.setattr(Cgroup, "create", classmethod(recording_create))
    monkeypatch.setattr(JobParent, "create", classmethod(recording_parent))
    yield
    assert leftovers.our_containers(docker_client) == [], "a sandbox container was left behind"
    procs = leftovers.our_sandbox_processes(docker_client, ours)
    if procs:  # a process seen in the instant between two jobs of another run: look again
        time.sleep(2)
        procs = leftovers.our_sandbox_processes(docker_client, ours)
    assert procs == [], "a sandbox process was left running"
    groups = leftovers.cgroups_named(ours)
    assert groups == [], f"cgroups left behind: {groups}"
    assert leftovers.our_out_mounts() == [], "an out-dir tmpfs was left mounted"
    assert leftovers.our_job_dirs() == [], "a job dir was left behind"


@pytest.fixture
def llm_url() -> Iterator[str]:
    """The recorded small-model replies for mnist5k: `fake-generator` and `fake-improver`."""
    from tests.fakes import MNIST5K_REPLIES
    from tests.helpers.agent_cli import llm_server

    with llm_server(MNIST5K_REPLIES) as url:
        yield url


@pytest.fixture
def paced_llm_url() -> Iterator[str]:
    """The same replies, each after 0.5 s, as a local model takes seconds to write one: a test
    that kills a run between two progress lines needs the loop to outlast the kill's delay, and
    the warm sandbox alone may finish several iterations a second."""
    from tests.fakes import MNIST5K_REPLIES
    from tests.helpers.agent_cli import llm_server

    with llm_server(MNIST5K_REPLIES, "--reply-delay", "0.5") as url:
        yield url


@pytest.fixture(scope="session")
def warm_backend(sandbox_image: str) -> Iterator[Any]:
    """One warm container for the whole session: jobs follow each other in it, as in a search."""
    from sandbox.backends.warm import WarmDockerBackend

    warm = WarmDockerBackend(image=sandbox_image)
    yield warm
    warm.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    """Each sandbox backend in turn: the session's warm container, Docker per job, process (a
    test may narrow this with `across_backends` or `on_the_default_backend`)."""
    from sandbox.backends.docker import DockerBackend
    from sandbox.backends.process import ProcessBackend

    if request.param == "docker":
        return DockerBackend(image=request.getfixturevalue("sandbox_image"))
    if request.param == "docker-warm":
        return request.getfixturevalue("warm_backend")
    return ProcessBackend()
