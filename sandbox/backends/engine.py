"""The Docker engine's errors as one `BackendUnavailable` line: what failed, or how to start it.

Shared by the image's builder and both Docker backends, so the words a user reads when the engine
is gone are the same wherever it was found gone.
"""

from __future__ import annotations

import docker.errors

from sandbox.backends.base import BackendUnavailable


def one_line(exc: BaseException) -> str:
    """The engine's message, its first line only (its own tracebacks run long)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def engine_error(exc: BaseException, doing: str = "") -> BackendUnavailable:
    """The one translation of a Docker SDK or HTTP error into BackendUnavailable.

    The engine's own refusal (a DockerException; its APIError is also a requests HTTPError, so
    it is tested first) says what failed while `doing`; anything else, or no `doing`, means the
    engine cannot be reached, and the message says how to start it.
    """
    if doing and isinstance(exc, docker.errors.DockerException):
        return BackendUnavailable(f"{doing}: {one_line(exc)}")
    return BackendUnavailable(
        f"Docker engine not reachable ({one_line(exc)}): start it (sudo .ci/start-dockerd) "
        "or set NASLOOP_SANDBOX=process"
    )
