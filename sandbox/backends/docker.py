"""The Docker backend: one throwaway container per job, closed on every side.

The container gets no network, a read-only root, /job and /data read-only, /out as the only
writable host directory, a private tmpfs scratch at /tmp, memory (no swap), process-count and
wall-time limits, uid 65534 with no capabilities and no privilege gain, an environment built
from nothing (no host variables, hence no API keys), and only the GPUs listed in the job. The
image (`python -m sandbox.image build`) says by its labels which interpreter to run and which
host paths to lend read-only (the `local` kind borrows the host's /usr and Python).

Whatever happens (normal exit, timeout, OOM, a container that never started, Ctrl-C), the
container is force-removed before `run` returns or raises. Where the host can (a local engine
with the cgroupfs driver), the container is put under a cgroup made for the job, whose peak
memory the host reads after it ends and which is removed with it (container_memory.JobParent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import replace
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

from sandbox.backends.base import (
    DATA_MOUNT,
    JOB_MOUNT,
    LOG_TAIL_BYTES,
    OUT_MOUNT,
    SCRATCH_MOUNT,
    BackendUnavailable,
    Job,
    MarkerFollower,
    RunOutcome,
    runner_argv,
)
from sandbox.backends.container_memory import JobParent, reap_parents
from sandbox.backends.engine import engine_error, one_line
from sandbox.backends.workdir import let_others_read, owner_alive, owner_tag
from sandbox.image import BUILD_HINT, DEFAULT_TAG, ImageInfo, read_labels

log = logging.getLogger(__name__)

# Every container we start carries this label (value: the job's out dir path), so tests and
# operators can find strays: `docker ps -a --filter label=nasloop.job`.
JOB_LABEL = "nasloop.job"
# "<host>:<pid>" of the process that started the container: a container whose owner died (killed
# with SIGKILL, so its `finally` never ran) is reaped by the next backend on that host.
OWNER_LABEL = "nasloop.owner"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The json-file driver keeps at most 2 x 1 MiB per container: a candidate printing in a loop
# cannot fill the disk, and the last LOG_TAIL_BYTES are always there to read.
_LOG_CONFIG = LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"})

# Seconds allowed for engine calls other than the job's own wait (create, kill, logs, remove).
_API_TIMEOUT_S = 60
# How an expired wait shows up: requests raises ConnectionError("Read timed out") over the unix
# socket, ReadTimeout over TCP.
_WAIT_EXPIRED = (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)
# After a kill, how long to wait for the engine to report the container stopped.
_KILL_GRACE_S = 10.0


def confinement(memory_mb: int, pids: int, gpus: tuple[str, ...]) -> dict[str, Any]:
    """`containers.create` arguments every sandbox container gets, per candidate or warm: no
    network, a read-only root, memory without swap, a process cap, no capabilities, no core
    dumps, no privilege gain, a private IPC namespace, bounded logs, only the listed GPUs."""
    devices = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])] if gpus else None
    return {
        "network_mode": "none",
        "read_only": True,
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",  # equal: no swap to hide in
        "pids_limit": pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "ipc_mode": "private",
        "ulimits": [Ulimit(name="core", soft=0, hard=0)],
        "device_requests": devices,
        "log_config": _LOG_CONFIG,
        "hostname": "sandbox",
        "detach": True,
    }


def docker_available(image: str = DEFAULT_TAG) -> bool:
    """True when an engine answers and has the sandbox image (what the `auto` choice asks)."""
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
            client.images.get(image)
            return True
        finally:
            client.close()
    except Exception:  # no engine, no image, a broken DOCKER_HOST: all mean "not available"
        return False


def _parse_user(user: str) -> tuple[int, int] | None:
    """Numeric "uid:gid" (or "uid") → ids to chown /out to; None for user names."""
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (gid.isdigit() or not gid):
        return int(uid), int(gid or uid)
    return None


def owner_label() -> str:
    """This process as its containers' owner label: "<host>:<pid>-<start time>" (see
    workdir.owner_tag), so that a reused pid is not taken for a dead owner."""
    return f"{socket.gethostname()}:{owner_tag()}"


def parse_owner_label(label: str) -> tuple[str, int, str] | None:
    """(host, pid, start) from an owner label; start is "na" in labels written before it was."""
    host, _, tag = label.rpartition(":")
    pid, _, start = tag.partition("-")
    return (host, int(pid), start or "na") if host and pid.isdigit() else None


def reap_orphans(client: Any) -> int:
    """Remove containers started on this host by a process that no longer exists."""
    host = socket.gethostname()
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        owner = parse_owner_label(container.labels.get(OWNER_LABEL, ""))
        if owner is None or owner[0] != host or owner_alive(owner[1], owner[2]):
            continue
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
            removed += 1
    if removed:
        log.warning("removed %d sandbox container(s) left by a killed run", removed)
    return removed


class DockerBackend:
    name = "docker"

    def __init__(
        self,
        image: str = DEFAULT_TAG,
        user: str = "65534:65534",
        client: docker.DockerClient | None = None,
    ) -> None:
        self.image = image
        self.user = user
        self._client = client

    # --- engine and image ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise BackendUnavailable (naming the fix) unless the engine and the image answer."""
        self._image_info(self._connect())

    def _connect(self) -> Any:
        try:
            if self._client is None:
                self._client = docker.from_env(timeout=_API_TIMEOUT_S)
                self._client.ping()
                reap_orphans(self._client)
                reap_parents()  # after their containers: a parent goes once it is empty
            self._client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc
        return self._client

    def _image_info(self, client: Any) -> tuple[ImageInfo, list[str]]:
        """The image's labels, and its default environment (image variables, not the host's)."""
        try:
            image = client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            raise BackendUnavailable(
                f"sandbox image {self.image} not found: build it with `{BUILD_HINT}`"
            ) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc
        try:
            info = read_labels(image.labels, self.image)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from exc
        missing = info.missing_mounts()
        if missing:
            raise BackendUnavailable(
                f"sandbox image {self.image} lends host paths this host lacks "
                f"({', '.join(missing)}): it was built elsewhere or the Python moved; "
                f"rebuild with `{BUILD_HINT}`"
            )
        return info, list((image.attrs.get("Config") or {}).get("Env") or [])

    # --- the container's shape -----------------------------------------------------------------

    def _environment(self, job: Job, image_env: list[str]) -> dict[str, str]:
        """Built from nothing: not one variable of the orchestrator's process gets in."""
        image_path = next((e[5:] for e in image_env if e.startswith("PATH=")), "")
        threads = str(len(os.sched_getaffinity(0)))
        return {
            "HOME": SCRATCH_MOUNT,
            "TMPDIR": SCRATCH_MOUNT,
            "PATH": image_path or DEFAULT_PATH,  # the cuda image's own PATH finds its `python`
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",  # the log tail shows the last line printed before a kill
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            # A CUDA base image says "all"; under an nvidia default runtime that would hand a CPU
            # job every GPU. "void" means none; with GPUs it names exactly the given ones.
            "NVIDIA_VISIBLE_DEVICES": ",".join(job.limits.gpus) or "void",
        }

    def _mounts(self, job: Job, info: ImageInfo) -> list[Mount]:
        def bind(source: str, target: str, read_only: bool) -> Mount:
            return Mount(target=target, source=source, type="bind", read_only=read_only)

        return [
            *(bind(p, p, True) for p in info.host_mounts),
            bind(str(job.job_dir.resolve()), JOB_MOUNT, True),
            bind(str(job.data_dir.resolve()), DATA_MOUNT, True),
            bind(str(job.out_dir.resolve()), OUT_MOUNT, False),
        ]

    def _prepare_dirs(self, job: Job) -> None:
        for d in (job.job_dir, job.data_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"job input directory missing: {d}")
            let_others_read(d)
        job.out_dir.mkdir(parents=True, exist_ok=True)
        ids = _parse_user(self.user)
        try:
            if ids is None:
                raise PermissionError("user given by name")
            os.chown(job.out_dir, *ids)
        except PermissionError:  # not root, or a named user: fall back to a world-writable dir
            job.out_dir.chmod(0o777)

    # --- one job ---------------------------------------------------------------------------------

    def fresh_job_backend(self) -> DockerBackend:
        return self  # a one-off job (sandbox/verify.py) gets a fresh container here, as every job

    def run(self, job: Job) -> RunOutcome:
        client = self._connect()
        info, image_env = self._image_info(client)
        self._prepare_dirs(job)
        limits = job.limits
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", job.out_dir.parent.name)[:40]
        name = f"nasloop-{safe}-{uuid.uuid4().hex[:8]}"
        labels = {
            JOB_LABEL: str(job.out_dir.resolve()),
            "nasloop.container": name,
            OWNER_LABEL: owner_label(),
        }
        parent = JobParent.create(client)  # outlives the container: the host reads its peak
        container: Any = None
        try:
            try:
                # create, then start: a container whose start fails stays behind in "Created"
                # state, and only holding its handle lets the finally below remove it.
                container = client.containers.create(
                    self.image,
                    command=runner_argv(info.python, JOB_MOUNT, DATA_MOUNT, OUT_MOUNT),
                    name=name,
                    labels=labels,
                    user=self.user,
                    environment=self._environment(job, image_env),
                    working_dir=SCRATCH_MOUNT,
                    mounts=self._mounts(job, info),
                    tmpfs={SCRATCH_MOUNT: f"rw,nosuid,nodev,size={limits.scratch_mb}m,mode=1777"},
                    cgroup_parent=parent.cgroup_parent if parent else None,
                    **confinement(limits.memory_mb, limits.pids, limits.gpus),
                )
                started = time.monotonic()
                container.start()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise engine_error(exc, "could not start the sandbox container") from exc

            (follower := MarkerFollower(lambda: container.logs(stream=True, follow=True))).start()
            try:
                outcome = self._wait_and_collect(client, container, limits.timeout_s, started)
                reached = follower.reached(outcome.log_tail)
                peak = parent.peak_mb() if parent else None
                return replace(outcome, reached_candidate=reached, peak_memory_mb=peak)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise engine_error(exc, "lost the sandbox container while it ran") from exc
            finally:
                follower.stop.set()
        finally:
            self._remove(client, container, name)
            if parent and not parent.remove():
                log.warning("could not remove the job's cgroup %s", parent.name)

    def _wait_and_collect(
        self, client: Any, container: Any, timeout_s: float, started: float
    ) -> RunOutcome:
        deadline = started + timeout_s
        exit_code: int | None = None
        timed_out = False
        while exit_code is None and not timed_out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                exit_code = int(container.wait(timeout=remaining)["StatusCode"])
            except _WAIT_EXPIRED:
                # The wait's HTTP read ran out: the wall-time limit is up. If it ended well
                # before the deadline the connection broke instead: the ping raises when the
                # engine is gone, and otherwise we go on waiting.
                if deadline - time.monotonic() > 1.0:
                    client.ping()
                    time.sleep(0.2)
                else:
                    timed_out = True
        if timed_out:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.kill()  # SIGKILL to the container's pid 1 takes its namespace down
            with contextlib.suppress(*_WAIT_EXPIRED):
                container.wait(timeout=_KILL_GRACE_S)
        seconds = time.monotonic() - started
        container.reload()
        return RunOutcome(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=bool(container.attrs["State"].get("OOMKilled")),
            log_tail=self._log_tail(container),
            seconds=seconds,
        )

    @staticmethod
    def _log_tail(container: Any) -> str:
        try:
            raw: bytes = container.logs(stdout=True, stderr=True)
        except docker.errors.DockerException as exc:
            return f"[nasloop: could not read the container's logs: {one_line(exc)}]"
        tail = raw[-LOG_TAIL_BYTES:]
        return tail.decode("utf-8", errors="replace")

    @staticmethod
    def _remove(client: Any, container: Any, name: str) -> None:
        """Force-remove the container (running or not); look it up by name if create's reply
        never arrived."""
        for attempt in range(3):
            try:
                if container is None:
                    found = client.containers.list(all=True, filters={"name": f"^/?{name}$"})
                    if not found:
                        return
                    container = found[0]
                container.remove(force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                gone = isinstance(exc, requests.exceptions.ConnectionError)  # next backend reaps
                if gone or "already in progress" in str(exc):
                    return
                if attempt == 2:
                    log.error("could not remove sandbox container %s: %s", name, one_line(exc))
                else:
                    time.sleep(0.5)
