"""The static policy through the real tool and the real Docker engine: a program that reaches for
os, subprocess, socket, `__import__` or a `getattr` trick is refused as `forbidden` and no
container is created for it (the engine's own event log says so); an honest net trains."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.backends.base import Limits
from sandbox.backends.docker import OWNER_LABEL, DockerBackend, owner_label
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.networks import policy_net
from tests.helpers.sandbox_jobs import source
from tools.train_candidate import make_train_candidate

pytestmark = pytest.mark.docker

REACHING = {
    "os": policy_net("os.system('id')", "import os\n"),
    "subprocess": policy_net("subprocess.run(['id'])", "import subprocess\n"),
    "socket": policy_net("socket().connect(('x', 1))", "from socket import socket\n"),
    "__import__": policy_net("__import__('os').system('id')"),
    "getattr": policy_net("getattr(torch, 'o' + 's').system('id')"),
    "dunders": policy_net("().__class__.__base__.__subclasses__()"),
}


def created_containers(client: Any, since: float) -> list[str]:
    """Job containers this process had the engine create since `since` (the engine's own event
    log, not our bookkeeping; another process's jobs carry another owner label)."""
    label = f"{OWNER_LABEL}={owner_label()}"
    events = client.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"event": "create", "label": label},
        decode=True,
    )
    return [e.get("id", "") for e in events if e.get("Type") == "container"]


def test_a_program_that_reaches_out_starts_no_sandbox_and_an_honest_one_does(
    mnist: PreparedDataset, sandbox_image: str, docker_client: Any
) -> None:
    backend = DockerBackend(image=sandbox_image)
    limits = Limits(timeout_s=120, memory_mb=2048, pids=128, scratch_mb=64)
    tool = make_train_candidate(Evaluator(mnist, backend, {"train_limit": 300}, limits))
    since = time.time() - 1
    results = {name: tool.invoke({"code": code}) for name, code in REACHING.items()}
    for name, result in results.items():
        assert result["kind"] == "forbidden", (name, result)
        assert result["message"].startswith("refused before training: the program "), result
    assert created_containers(docker_client, since) == []

    honest = tool.invoke({"code": source("small_cnn")})
    assert honest["status"] == "ok", honest
    assert len(created_containers(docker_client, since)) == 1
