"""Shared fixtures for integration tests that need real services (here: the Docker engine).

Docker tests never skip: a missing engine is an error with the fix in its message, so CI cannot
go green without having exercised the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


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
def llm_url() -> Iterator[str]:
    """Base URL of the test's own OpenAI-compatible server (a separate process) replaying the
    recorded small-model replies for mnist5k: `fake-generator` and `fake-improver`."""
    import subprocess
    import sys

    from tests.fakes import MNIST5K_REPLIES
    from tests.integration.agent_cli import ROOT

    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--replies", str(MNIST5K_REPLIES)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    ready = server.stdout.readline().split()
    assert ready and ready[0] == "READY", ready
    yield ready[1]
    server.kill()
    server.wait()
