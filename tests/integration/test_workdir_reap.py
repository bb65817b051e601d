"""An evaluator SIGKILLed mid-job leaves its job dir (and the tmpfs on its out dir) behind; the
next evaluation on the host removes them, and leaves a live evaluator's job dir alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends.base import Backend, Limits
from sandbox.backends.docker import OWNER_LABEL, DockerBackend, parse_owner_label
from sandbox.backends.process import ProcessBackend
from sandbox.backends.workdir import JOB_DIR_PREFIX, mounts, owner_tag
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.leftovers import SANDBOX_UIDS, cgroup_of
from tests.helpers.paths import CANDIDATES, ROOT
from tests.helpers.sandbox_jobs import source

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

# The evaluator to kill: one job of a candidate that sleeps in training, far from its time limit.
CHILD = """
import sys
from pathlib import Path
from sandbox.backends.base import Limits
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator

kind, image, data_root, candidate = sys.argv[1:]
if kind == "docker":
    from sandbox.backends.docker import DockerBackend
    backend = DockerBackend(image=image)
else:
    from sandbox.backends.process import ProcessBackend
    backend = ProcessBackend()
limits = Limits(timeout_s=300, memory_mb=1024, pids=64, scratch_mb=64)
data = PreparedDataset.load(Path(data_root))
evaluator = Evaluator(data, backend, {"train_limit": 64}, limits, precheck=False)
evaluator.evaluate(Path(candidate).read_text())
"""


def proc_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, state) for every process on the host."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> list[int]:
    table = proc_table()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in table.items() if ppid == parent]
        found += children
        frontier += children
    return found


def running(pids: list[int]) -> list[int]:
    table = proc_table()
    return [p for p in pids if p in table and table[p][1] not in ("Z", "X")]


def uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def sandbox_started(kind: str, child: int, client: Any) -> bool:
    """Whether the child evaluator's candidate is running (so the kill lands mid-job)."""
    if kind == "process":
        return any(uid_of(p) in SANDBOX_UIDS for p in descendants(child))
    return bool(containers_of(client, child, status="running"))


def containers_of(client: Any, pid: int, **filters: str) -> list[Any]:
    """The sandbox containers whose owner label names process `pid` on this host."""
    found = client.containers.list(all=True, filters={"label": OWNER_LABEL, **filters})
    owner = (socket.gethostname(), pid)
    return [c for c in found if (parse_owner_label(c.labels[OWNER_LABEL]) or ())[:2] == owner]


def wait_mid_job(kind: str, child: subprocess.Popen[bytes], client: Any) -> Path:
    """The child's job dir, once its sandboxed candidate runs."""
    deadline = time.monotonic() + 120
    pattern = f"{JOB_DIR_PREFIX}{child.pid}-*"
    while time.monotonic() < deadline:
        if child.poll() is not None:
            assert child.stderr is not None
            pytest.fail(f"the evaluator exited early: {child.stderr.read().decode()[-2000:]}")
        dirs = list(Path(tempfile.gettempdir()).glob(pattern))
        if dirs and sandbox_started(kind, child.pid, client):
            return dirs[0]
        time.sleep(0.2)
    pytest.fail("the evaluator never got its candidate running")


@pytest.fixture
def live_owner_dir() -> Iterator[Path]:
    """A job dir whose owner (a sleeping process) is alive: no reaper may touch it."""
    owner = subprocess.Popen(["sleep", "600"])
    work = Path(tempfile.gettempdir()) / f"{JOB_DIR_PREFIX}{owner_tag(owner.pid)}-live"
    (work / "out").mkdir(parents=True)
    (work / "out" / "report.json").write_text("{}")
    yield work
    owner.kill()
    owner.wait()
    for path in (work / "out" / "report.json", work / "out", work):
        path.unlink() if path.is_file() else path.rmdir()


@pytest.mark.parametrize("kind", ["process", "docker"])
def test_killed_evaluators_job_dir_is_reaped_by_the_next(
    kind: str,
    mnist: PreparedDataset,
    sandbox_image: str,
    docker_client: Any,
    live_owner_dir: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASLOOP_")}
    argv = [kind, sandbox_image, str(mnist.root), str(CANDIDATES / "hang.py")]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        work = wait_mid_job(kind, child, docker_client)
        sandboxed = descendants(child.pid)
        groups = {
            line.rpartition("/")[2]
            for pid in sandboxed
            for line in cgroup_of(pid).splitlines()
            if "/nasloop-" in line
        }
    finally:
        child.kill()
        child.wait()
        assert child.stderr is not None
        child.stderr.close()

    assert child.returncode == -9
    assert (work / "job" / "candidate.py").is_file(), "the killed evaluator's job dir is gone"
    out = os.path.realpath(work / "out")
    if os.geteuid() == 0:
        assert out in [target for _, target in mounts()], "its out dir was not a tmpfs"
    deadline = time.monotonic() + 30  # the process sandbox dies with its parent (bwrap)
    while running(sandboxed) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(sandboxed) == [], "the killed evaluator's sandbox outlived it"

    # The next evaluator on the host, with a fresh backend as a new process would have.
    backend: Backend = DockerBackend(image=sandbox_image) if kind == "docker" else ProcessBackend()
    limits = Limits(timeout_s=60, memory_mb=1024, pids=64, scratch_mb=64)
    result = Evaluator(mnist, backend, {}, limits, precheck=False).evaluate(source("syntax_error"))
    assert result["kind"] == "syntax", result

    assert not work.exists(), "the dead evaluator's job dir was not reaped"
    assert not [t for _, t in mounts() if t == out or t.startswith(out + "/")]
    assert (live_owner_dir / "out" / "report.json").is_file(), "a live owner's job dir was reaped"
    assert containers_of(docker_client, child.pid) == []
    left = [g for name in groups for g in Path("/sys/fs/cgroup").glob(f"**/{name}")]
    assert left == [], f"the killed evaluator's cgroups are still there: {left}"
