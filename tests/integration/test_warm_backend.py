"""The warm Docker backend's own guarantees, beyond the corpus it shares with the other backends.

Jobs in one warm container follow each other: each must start from nothing that the one before
left (processes, files), run as its own uid without capabilities or host environment, be unable
to touch the worker, and an OOM or a dead worker must cost only the job that met it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends.warm import WarmDockerBackend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.paths import ROOT
from tests.helpers.sandbox_jobs import QUICKER, limits, source

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

LIMITS = limits(timeout_s=60, memory_mb=1024, pids=64)

# Leaves a sleeping process, a file in the scratch and one in /dev/shm, then trains normally.
LEAVE_TRACES = """
import os, subprocess, sys
import torch.nn as nn
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
for place in ("/tmp", "/dev/shm", os.environ["TMPDIR"]):
    with open(os.path.join(place, "left-by-the-last-job"), "w") as f:
        f.write("x")

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""

# Reports, as its failure message, what it can see and do.
PROBE = """
import json, os, signal
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\\t" in line)
others = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in (1, os.getpid()):
        try:
            others.append(os.stat("/proc/" + pid).st_uid)
        except OSError:
            pass
try:
    os.kill(1, signal.SIGKILL)
    killed_worker = True
except PermissionError:
    killed_worker = False
traces = [os.path.join(p, n) for p in ("/tmp", "/dev/shm", "/outs")
          for n in os.listdir(p) if "left-by" in n or n.startswith("job-")]
traces.remove(os.environ["TMPDIR"])  # our own scratch
info = {"uid": os.getuid(), "cap": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip(),
        "env": sorted(os.environ), "others": sorted(set(others)), "killed_worker": killed_worker,
        "traces": traces}
raise RuntimeError("PROBE " + json.dumps(info, separators=(",", ":")))
"""


@pytest.fixture
def warm(sandbox_image: str) -> Any:
    backend = WarmDockerBackend(image=sandbox_image)
    yield backend
    backend.close()


def evaluate(backend: WarmDockerBackend, data: PreparedDataset, code: str) -> dict[str, Any]:
    return dict(Evaluator(data, backend, dict(QUICKER), LIMITS, precheck=False).evaluate(code))


def probe(backend: WarmDockerBackend, data: PreparedDataset) -> dict[str, Any]:
    result = evaluate(backend, data, PROBE)
    assert result["kind"] == "runtime" and "PROBE " in result["message"], result
    text = result["message"].split("PROBE ", 1)[1].rsplit(" (during import)", 1)[0]
    info: dict[str, Any] = json.loads(text)
    return info


def test_each_job_starts_clean_as_its_own_powerless_user(
    warm: WarmDockerBackend, mnist: PreparedDataset
) -> None:
    assert evaluate(warm, mnist, LEAVE_TRACES)["status"] == "ok"
    first = probe(warm, mnist)
    second = probe(warm, mnist)
    for info in (first, second):
        assert info["uid"] >= 200_000  # a pool's own range: never root, never a host user
        assert info["cap"] == "0000000000000000" and info["nnp"] == "1"
        assert info["killed_worker"] is False  # the worker (pid 1, root) is out of reach
        assert info["others"] == [], info  # none but us and the worker: the sleeper is gone
        assert info["traces"] == [], info  # nothing left in the shared tmpfs places
        assert "OPENAI_API_KEY" not in info["env"] and "HOME" in info["env"]
    assert first["uid"] != second["uid"]  # consecutive jobs never share a uid
    assert evaluate(warm, mnist, source("small_cnn"))["status"] == "ok"


def test_an_oom_costs_the_job_not_the_worker(
    warm: WarmDockerBackend, mnist: PreparedDataset
) -> None:
    assert evaluate(warm, mnist, source("small_cnn"))["status"] == "ok"
    container = warm._pool.container.id if warm._pool else None
    result = evaluate(warm, mnist, source("memory_hog"))
    assert result["kind"] == "oom", result
    assert evaluate(warm, mnist, source("small_cnn"))["status"] == "ok"
    assert warm._pool is not None and warm._pool.container.id == container  # the same worker


def test_a_dead_worker_is_replaced(
    warm: WarmDockerBackend, mnist: PreparedDataset, docker_client: Any
) -> None:
    assert evaluate(warm, mnist, source("small_cnn"))["status"] == "ok"
    assert warm._pool is not None
    old = warm._pool.container.id
    docker_client.containers.get(old).kill()
    result = evaluate(warm, mnist, source("small_cnn"))
    assert result["status"] == "ok", result
    assert warm._pool is not None and warm._pool.container.id != old


def test_close_removes_the_container_and_the_pool_dir(
    warm: WarmDockerBackend, mnist: PreparedDataset, docker_client: Any
) -> None:
    assert evaluate(warm, mnist, source("small_cnn"))["status"] == "ok"
    assert warm._pool is not None
    container, root = warm._pool.container.id, warm._pool.root
    warm.close()
    assert not root.exists()
    assert docker_client.containers.list(all=True, filters={"id": container}) == []


OWNER = """
import sys, time
from pathlib import Path
from sandbox.backends.base import Limits
from sandbox.backends.warm import WarmDockerBackend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator

backend = WarmDockerBackend(image=sys.argv[1])
data = PreparedDataset.load(Path(sys.argv[2]))
limits = Limits(timeout_s=60, memory_mb=1024, pids=64, scratch_mb=64)
config = {"batch_size": 32, "lr": 0.01, "threads": 1, "train_limit": 64}
result = Evaluator(data, backend, config, limits).evaluate(Path(sys.argv[3]).read_text())
print(result["status"], backend._pool.container.id, backend._pool.root, flush=True)
time.sleep(600)
"""


def test_a_killed_owners_pool_is_reaped_by_the_next_backend(
    sandbox_image: str, mnist: PreparedDataset, docker_client: Any, tmp_path: Path
) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    candidate = Path(__file__).parents[1] / "candidates" / "small_cnn.py"
    argv = [sys.executable, str(script), sandbox_image, str(mnist.root), str(candidate)]
    owner = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        status, container, root = owner.stdout.readline().split()
        assert status == "ok"
    finally:
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.wait()
    assert docker_client.containers.list(all=True, filters={"id": container})
    assert Path(root).is_dir()
    backend = WarmDockerBackend(image=sandbox_image)
    try:
        assert evaluate(backend, mnist, source("small_cnn"))["status"] == "ok"
    finally:
        backend.close()
    assert docker_client.containers.list(all=True, filters={"id": container}) == []
    assert not Path(root).exists()
