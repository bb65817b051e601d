"""The Docker backend against the real engine: each wall of the sandbox, one test each.

The jobs here use tiny hand-written runner.py files, not sandbox/inside/runner.py: they test the
container, not training. Every test ends by checking that none of its containers is left.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.backends.base import LOG_TAIL_BYTES, BackendUnavailable, Job, Limits, RunOutcome
from sandbox.backends.docker import JOB_LABEL, DockerBackend, docker_available
from sandbox.image import DEFAULT_TAG, SANDBOX_UID, image_info

pytestmark = pytest.mark.docker

# Prepended to every runner: the three paths arrive on the command line, as with the real runner.
PRELUDE = """\
import json, os, sys
OUT = sys.argv[sys.argv.index("--out") + 1]
def save(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f)
"""

MakeJob = Callable[..., Job]


@pytest.fixture
def job_prefix(docker_client: Any) -> Iterator[str]:
    """A name shared by this test's jobs; afterwards, no container of theirs may remain."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    left = [
        c.name
        for c in docker_client.containers.list(all=True, filters={"label": JOB_LABEL})
        if f"/{prefix}-" in c.labels.get(JOB_LABEL, "")
    ]
    assert left == [], f"containers left behind: {left}"


@pytest.fixture
def make_job(tmp_path: Path, job_prefix: str) -> MakeJob:
    count = iter(range(1000))

    def make(runner: str, **limits: Any) -> Job:
        n = next(count)
        job_dir, data_dir = tmp_path / f"job{n}", tmp_path / f"data{n}"
        job_dir.mkdir()
        data_dir.mkdir()
        (data_dir / "public.txt").write_text("data\n")
        (job_dir / "runner.py").write_text(PRELUDE + textwrap.dedent(runner))
        out_dir = tmp_path / f"{job_prefix}-{n}"
        return Job(job_dir=job_dir, data_dir=data_dir, out_dir=out_dir, limits=Limits(**limits))

    return make


@pytest.fixture
def backend(sandbox_image: str) -> DockerBackend:
    return DockerBackend(image=sandbox_image)


def read_out(job: Job, name: str) -> Any:
    return json.loads((job.out_dir / name).read_text())


def test_writes_out_and_exits_zero(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job(
        """
        print("hello on stdout")
        print("hello on stderr", file=sys.stderr)
        with open(os.path.join(OUT, "hello.txt"), "w") as f:
            f.write(open("/data/public.txt").read())
        """,
        timeout_s=30,
    )
    outcome = backend.run(job)
    assert outcome.exit_code == 0, outcome.log_tail
    assert not outcome.timed_out and not outcome.oom_killed
    assert (job.out_dir / "hello.txt").read_text() == "data\n"
    assert (job.out_dir / "hello.txt").stat().st_uid == SANDBOX_UID
    assert "hello on stdout" in outcome.log_tail and "hello on stderr" in outcome.log_tail
    assert 0 < outcome.seconds < 10


def test_wall_time_limit_kills(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job("import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n", timeout_s=2)
    started = time.monotonic()
    outcome = backend.run(job)
    assert outcome.timed_out and outcome.exit_code is None and not outcome.oom_killed
    assert 2 <= outcome.seconds < 2 + 5
    assert time.monotonic() - started < 2 + 8
    assert "sleeping" in outcome.log_tail


def test_memory_limit_oom_kills(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job(
        """
        hoard = []
        while True:
            hoard.append(b"x" * (16 << 20))  # touched pages, so they count against the limit
        """,
        memory_mb=128,
        timeout_s=30,
    )
    outcome = backend.run(job)
    assert outcome.oom_killed, outcome
    assert outcome.exit_code == 137 and not outcome.timed_out


def test_fork_bomb_is_contained(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job(
        """
        import time
        told = False
        while True:
            try:
                if os.fork() == 0:
                    told = False
            except OSError as e:  # the pids limit says no; keep pressing until killed
                if not told:
                    print("fork refused:", e.strerror, flush=True)
                    told = True
                time.sleep(0.01)
        """,
        pids=32,
        memory_mb=1024,
        timeout_s=4,
    )
    started = time.monotonic()
    outcome = backend.run(job)
    assert time.monotonic() - started < 4 + 10
    assert outcome.timed_out or outcome.exit_code != 0
    assert "fork refused: Resource temporarily unavailable" in outcome.log_tail, outcome
    # The host can still start processes.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_no_network(backend: DockerBackend, make_job: MakeJob) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    job = make_job(
        f"""
        import socket
        result = {{"interfaces": [name for _, name in socket.if_nameindex()]}}
        for host, port in (("1.1.1.1", 53), ("127.0.0.1", {port})):
            try:
                socket.create_connection((host, port), timeout=2).close()
                result[host] = "connected"
            except OSError as e:
                result[host] = repr(e)
        save("net.json", result)
        """,
        timeout_s=30,
    )
    try:
        outcome = backend.run(job)
        assert outcome.exit_code == 0, outcome.log_tail
        net = read_out(job, "net.json")
        assert net["1.1.1.1"] != "connected" and net["127.0.0.1"] != "connected", net
        assert net["interfaces"] == ["lo"], net
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's listener
    finally:
        listener.close()


def test_host_environment_does_not_leak(
    backend: DockerBackend, make_job: MakeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("NASLOOP_TEST_SECRET", secret)
    job = make_job('save("env.json", dict(os.environ))\n', timeout_s=30)
    outcome = backend.run(job)
    assert outcome.exit_code == 0, outcome.log_tail
    env = read_out(job, "env.json")
    assert "NASLOOP_TEST_SECRET" not in env
    assert secret not in json.dumps(env)
    assert env["HOME"] == "/tmp" and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    # Only what the backend (or the engine: HOSTNAME, interpreter: LC_CTYPE) put there.
    allowed = {
        "HOME",
        "TMPDIR",
        "PATH",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NVIDIA_VISIBLE_DEVICES",
        "HOSTNAME",
        "LC_CTYPE",
    }
    assert set(env) <= allowed, set(env) - allowed


def test_read_only_everywhere_but_out_and_scratch(
    backend: DockerBackend, make_job: MakeJob
) -> None:
    job = make_job(
        """
        import errno
        result = {}
        for d in ("/", "/job", "/data", "/usr", "/etc", "/out", "/tmp"):
            try:
                with open(os.path.join(d, "written-by-sandbox"), "w") as f:
                    f.write("x")
                result[d] = "ok"
            except OSError as e:
                result[d] = errno.errorcode.get(e.errno, str(e.errno))
        lines = open("/proc/self/status").read().splitlines()
        status = dict(line.split(":\\t", 1) for line in lines if ":\\t" in line)
        result["ids"] = [os.getuid(), os.getgid()]
        result["CapEff"] = status["CapEff"].strip()
        result["NoNewPrivs"] = status["NoNewPrivs"].strip()
        save("rw.json", result)
        """,
        timeout_s=30,
    )
    # World-writable inputs: only the read-only mount can stop the writes, not permissions.
    job.job_dir.chmod(0o777)
    job.data_dir.chmod(0o777)
    outcome = backend.run(job)
    assert outcome.exit_code == 0, outcome.log_tail
    rw = read_out(job, "rw.json")
    assert rw["/out"] == "ok" and rw["/tmp"] == "ok", rw
    for d in ("/", "/job", "/data"):
        assert rw[d] == "EROFS", rw
    assert rw["/usr"] != "ok" and rw["/etc"] != "ok", rw
    assert not (job.job_dir / "written-by-sandbox").exists()
    assert not (job.data_dir / "written-by-sandbox").exists()
    assert rw["ids"] == [SANDBOX_UID, SANDBOX_UID]
    assert int(rw["CapEff"], 16) == 0 and rw["NoNewPrivs"] == "1", rw


def test_torch_runs_from_host_mounts(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job(
        """
        import torch
        x = torch.arange(6.0).reshape(2, 3)  # (2, 3)
        save("torch.json", {"y": (x @ x.T).tolist(), "version": torch.__version__})
        """,
        memory_mb=2048,
        timeout_s=60,
    )
    outcome = backend.run(job)
    assert outcome.exit_code == 0, outcome.log_tail
    assert read_out(job, "torch.json")["y"] == [[5.0, 14.0], [14.0, 50.0]]


def test_log_flood_keeps_only_the_tail(backend: DockerBackend, make_job: MakeJob) -> None:
    job = make_job(
        """
        line = "spam " * 20
        for _ in range(40_000):  # about 4 MB
            print(line)
        print("THE-END")
        """,
        timeout_s=30,
    )
    outcome = backend.run(job)
    assert outcome.exit_code == 0
    assert len(outcome.log_tail.encode()) <= LOG_TAIL_BYTES
    assert outcome.log_tail.endswith("THE-END\n")


def test_failed_start_leaves_no_container(
    docker_client: Any, sandbox_image: str, make_job: MakeJob
) -> None:
    # A user the image does not know makes the start fail after create: the "Created" case.
    backend = DockerBackend(image=sandbox_image, user="no-such-user")
    job = make_job("print('never')\n", timeout_s=30)
    label = f"{JOB_LABEL}={job.out_dir.resolve()}"
    since = int(time.time()) - 1
    with pytest.raises(BackendUnavailable, match="could not start"):
        backend.run(job)
    # the engine's own record: this job's container was created (the case under test), and is
    # gone, not merely stopped
    events = docker_client.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": "container", "label": label},
        decode=True,
    )
    seen = [e["Action"] for e in events if e.get("Action") in ("create", "start", "destroy")]
    assert seen[0] == "create" and seen[-1] == "destroy", seen
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


def test_missing_image_names_the_build_command(docker_client: Any, make_job: MakeJob) -> None:
    backend = DockerBackend(image="nasloop-sandbox:no-such-tag", client=docker_client)
    with pytest.raises(BackendUnavailable, match=r"python -m sandbox\.image build"):
        backend.run(make_job("print('never')\n"))
    assert not docker_available("nasloop-sandbox:no-such-tag")


def test_unreachable_engine_says_how_to_fix(make_job: MakeJob, tmp_path: Path) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    with pytest.raises(BackendUnavailable, match=r"Docker engine not reachable.*start-dockerd"):
        DockerBackend(client=client).run(make_job("print('never')\n"))


def test_image_labels_and_availability(docker_client: Any, sandbox_image: str) -> None:
    info = image_info(docker_client, sandbox_image)
    assert info is not None and info.kind in ("local", "cuda")
    if info.kind == "local":
        assert os.path.isabs(info.python) and os.access(info.python, os.X_OK)
        assert "/usr" in info.host_mounts and not info.missing_mounts()
    assert docker_available(DEFAULT_TAG) == (sandbox_image == DEFAULT_TAG)


def test_outcome_type(backend: DockerBackend, make_job: MakeJob) -> None:
    outcome = backend.run(make_job("sys.exit(3)\n", timeout_s=30))
    assert isinstance(outcome, RunOutcome)
    assert outcome.exit_code == 3 and not outcome.timed_out and not outcome.oom_killed
