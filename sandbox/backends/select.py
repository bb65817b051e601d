"""Pick the backend a setting asks for, and say plainly what isolation it gives."""

from __future__ import annotations

import sys

from sandbox.backends.base import Backend, BackendUnavailable


def make_backend(
    kind: str, image: str = "nasloop-sandbox:latest", announce: bool = True, warm: bool = False
) -> Backend:
    """`docker`, `process`, or `auto` (Docker when an engine and the image answer).

    With `warm`, Docker means one long-lived container whose worker forks a fresh, confined
    process per candidate (`WarmDockerBackend`) instead of one container per candidate.
    The choice is printed to stderr as one line, so a user never mistakes the weaker process
    sandbox for Docker.
    """
    from sandbox.backends.docker import DockerBackend, docker_available
    from sandbox.backends.process import ProcessBackend
    from sandbox.backends.warm import WarmDockerBackend

    docker_kind = WarmDockerBackend if warm else DockerBackend
    mode = "warm worker" if warm else "a container per candidate"
    backend: Backend
    if kind == "docker":
        docker_backend = docker_kind(image=image)
        docker_backend.check()
        backend = docker_backend
        line = f"nasloop: sandbox = docker ({image}, {mode})"
    elif kind == "process":
        process = ProcessBackend()
        backend, line = process, f"nasloop: sandbox = process: {process.isolation()}"
    elif kind == "auto":
        if docker_available(image):
            backend = docker_kind(image=image)
            line = f"nasloop: sandbox = docker ({image}, {mode})"
        else:
            process = ProcessBackend()
            backend = process
            line = (
                "nasloop: WARNING: Docker engine or image not available, so candidates run in the "
                f"process sandbox: {process.isolation()} (start dockerd and run "
                "`python -m sandbox.image build` for Docker)"
            )
    else:
        raise BackendUnavailable(f"unknown sandbox {kind!r}: use auto, docker or process")
    if announce:
        print(line, file=sys.stderr, flush=True)
    return backend
