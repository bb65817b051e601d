"""The warm Docker backend: one long-lived container per dataset and GPUs, a process per job.

A per-job container pays, before a candidate's first step, a container start (~0.3 s), an
interpreter start and torch import (~2 s) and torch._dynamo's import (~1 s, pulled in by a lazy
module or the FLOP count). On a GPU that is about as long as the one-epoch evaluation itself.
Here the container and the warm worker inside it stay up; each job is a fork of a process that
has already imported all of that, confined before the candidate runs (its own uid without
capabilities, its own session, rlimits, an empty environment, a private scratch; the worker's
docstring says how). After every job the worker kills every other process in the container,
deletes what the job left and proves the container is back to its state after warm-up
(processes, files in every writable place, SysV IPC, memory: the clearing's proof). A container
that cannot prove it is retired and a fresh one takes the next job, said in the log: a job's
result never depends on the jobs before it.

The container is closed like the per-job one (no network, read-only root, data read-only, tmpfs
scratch, memory with no swap, a pid limit, no-new-privileges, the job's GPUs only, an
environment built from nothing) except for who it runs as: root inside it, with only the SETUID,
SETGID and KILL capabilities, which the worker needs to give each job its own uid and to clear
it afterwards. Jobs reach it through a pool directory on the host: `jobs/` (read-only inside) and
`status/` (written only by the worker's root; a job's uid cannot write there, so a candidate
cannot forge its own outcome). Nothing from the job's out dir crosses over but two result files,
size-capped, which the host then scores as always.

A job whose own setup failed inside the worker (before the candidate's first line) is an
infrastructure fault, never the candidate's result: it is retried once in a fresh container, and
raises InfrastructureFault if it fails there too.

Memory: the container's limit is the job's limit plus WORKER_MEMORY_MB for the worker itself;
every job volunteers as the OOM killer's first victim, so an OOM ends the job, not the worker. A
worker that dies anyway (or stops answering) is replaced before the next job. The host resets
the container's memory peak before handing a job over and reads it when the outcome is in
(container_memory.ContainerPeak): the job's peak, plus the worker's own memory and page cache.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
from docker.types import Mount

from sandbox.backends.base import DATA_MOUNT, SCRATCH_MOUNT, BackendUnavailable, Job, RunOutcome
from sandbox.backends.container_memory import ContainerPeak
from sandbox.backends.docker import (
    JOB_LABEL,
    OWNER_LABEL,
    DockerBackend,
    confinement,
    owner_label,
)
from sandbox.backends.engine import engine_error
from sandbox.backends.workdir import let_others_read, make_job_dir
from sandbox.faults import InfrastructureFault
from sandbox.image import DEFAULT_TAG
from sandbox.inside import CLEARING, RUNNER, WORKER

log = logging.getLogger(__name__)

WARM_DIR_KIND = "warm-"  # in the pool dir's name: nasloop-job-<pid>-<start>-warm-<random>
WARM_LABEL = "nasloop.warm"  # on every warm container, besides the per-job container's labels
# Each pool draws its job uids from [base, base + 1000) with a random base at or above this.
WARM_UID_MIN = 200_000
POOL_MOUNT = "/pool"
RUNTIME_MOUNT = "/runtime"
OUT_TMPFS = "/outs"  # not /out: a tmpfs on a dir the image has keeps that dir's mode
WORKER_MEMORY_MB = 1024  # the worker's own share: an imported torch, page cache of the data
WORKER_PIDS = 64  # the worker's threads and its short-lived helpers
START_TIMEOUT_S = 120.0  # container start + torch import, on a slow disk
GRACE_S = 30.0  # past a job's limit, the worker has this long to report before we replace it
POLL_S = 0.01
FSIZE_BYTES = 256 * 2**20  # the largest file a job may write (its out dir and scratch are tmpfs)


@dataclass(frozen=True)
class PoolKey:
    """What a warm container is fixed to: a job with a different key gets a new container."""

    data_dir: str
    memory_mb: int
    pids: int
    scratch_mb: int
    gpus: tuple[str, ...]


class _SetupFailed(Exception):
    """The worker could not set a job up; the candidate never ran (the message says why)."""


class WarmPool:
    """One warm container and its host-side directories."""

    def __init__(
        self, key: PoolKey, container: Any, root: Path, uid_base: int, env: dict[str, str]
    ) -> None:
        self.key = key
        self.env = env  # every job's environment, built from nothing
        self.container = container
        self.root = root
        self.uid_base = uid_base
        self.next_job = 0
        self.memory: ContainerPeak | None = None  # the container's cgroup, where the host sees it

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def status(self) -> Path:
        return self.root / "status"


class WarmDockerBackend(DockerBackend):
    name = "docker-warm"

    def __init__(
        self, image: str = DEFAULT_TAG, client: Any = None, prove_clean: bool = True
    ) -> None:
        super().__init__(image=image, client=client)
        self._pool: WarmPool | None = None
        # False only to measure what the proof costs (`bench.warm_clean`): the worker still
        # kills and deletes everything after a job, but skips checking that it has.
        self.prove_clean = prove_clean
        self.started = 0  # containers started, and of them retired as not provably clean
        self.retired = 0
        self.clear_seconds: list[float] = []  # per job: killing and deleting what it left
        self.prove_seconds: list[float] = []  # per job: checking the container is clean
        atexit.register(self.close)

    # --- the pool ------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the warm container and its pool directory (also run at interpreter exit)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if pool.memory is not None:
            pool.memory.close()
        with contextlib.suppress(Exception):
            pool.container.remove(force=True, v=True)
        shutil.rmtree(pool.root, ignore_errors=True)

    def _pool_for(self, job: Job) -> WarmPool:
        limits = job.limits
        key = PoolKey(
            str(job.data_dir.resolve()),
            limits.memory_mb,
            limits.pids,
            limits.scratch_mb,
            limits.gpus,
        )
        pool = self._pool
        if pool is not None and (pool.key != key or not self._running(pool)):
            self.close()
            pool = None
        if pool is None:
            pool = self._pool = self._start(key)
        return pool

    @staticmethod
    def _running(pool: WarmPool) -> bool:
        try:
            pool.container.reload()
        except docker.errors.DockerException:
            return False
        except requests.exceptions.RequestException as exc:  # the engine itself is gone
            raise engine_error(exc) from exc
        return bool(pool.container.status == "running")

    def _start(self, key: PoolKey) -> WarmPool:
        client = self._connect()
        info, image_env = self._image_info(client)
        let_others_read(Path(key.data_dir))
        # Named like a job dir, so that a SIGKILLed owner's pool dir is reaped like one.
        root = make_job_dir(kind=WARM_DIR_KIND)
        for sub in ("jobs", "status", "runtime"):
            (root / sub).mkdir(parents=True)
        root.chmod(0o755)
        for sub in ("jobs", "status", "runtime"):
            (root / sub).chmod(0o755)  # root-owned: a job's uid reads, never writes
        for source in (WORKER, RUNNER, CLEARING):
            shutil.copyfile(source, root / "runtime" / source.name)
            (root / "runtime" / source.name).chmod(0o644)
        scratch = f"rw,nosuid,nodev,size={key.scratch_mb}m,mode=1777"
        name = f"nasloop-warm-{uuid.uuid4().hex[:8]}"

        def bind(source: str, target: str, read_only: bool) -> Mount:
            return Mount(target=target, source=source, type="bind", read_only=read_only)

        mounts = [
            *(bind(p, p, True) for p in info.host_mounts),
            bind(str(root / "runtime"), RUNTIME_MOUNT, True),
            bind(str(root / "jobs"), f"{POOL_MOUNT}/jobs", True),
            bind(str(root / "status"), f"{POOL_MOUNT}/status", False),
            bind(key.data_dir, DATA_MOUNT, True),
        ]
        container: Any = None
        try:
            container = client.containers.create(
                self.image,
                command=[info.python, "-I", "-B", f"{RUNTIME_MOUNT}/worker.py"],
                name=name,
                labels={
                    JOB_LABEL: name,
                    "nasloop.container": name,
                    OWNER_LABEL: owner_label(),
                    WARM_LABEL: "1",
                },
                user="0:0",
                environment=self._worker_environment(key, image_env),
                working_dir=SCRATCH_MOUNT,
                mounts=mounts,
                tmpfs={SCRATCH_MOUNT: scratch, OUT_TMPFS: scratch, "/dev/shm": scratch},
                # the worker needs these three to hand each job its own uid, and to end it
                cap_add=["SETUID", "SETGID", "KILL"],
                **confinement(key.memory_mb + WORKER_MEMORY_MB, key.pids + WORKER_PIDS, key.gpus),
            )
            container.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True, v=True)
            shutil.rmtree(root, ignore_errors=True)
            raise engine_error(exc, "could not start the warm sandbox container") from exc
        # A random uid range per pool: RLIMIT_NPROC counts a uid's processes across the host,
        # so two pools (two runs at once) must never share one.
        uid_base = random.randrange(WARM_UID_MIN, 2**30, 1000)
        pool = WarmPool(key, container, root, uid_base, self._worker_environment(key, image_env))
        self._pool = pool
        self.started += 1
        self._await_ready(pool)
        pool.memory = ContainerPeak.find(client, container)
        return pool

    def _worker_environment(self, key: PoolKey, image_env: list[str]) -> dict[str, str]:
        fake = Job(Path("."), Path("."), Path("."))
        env = self._environment(fake, image_env)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(key.gpus) or "void"
        return env

    def _await_ready(self, pool: WarmPool) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (pool.status / "ready").exists():
            if time.monotonic() > deadline or not self._running(pool):
                tail = self._log_tail(pool.container)[-2000:]
                self.close()
                raise BackendUnavailable(
                    f"the warm sandbox worker did not start (log tail: {tail.strip()!r}); "
                    "set NASLOOP_WARM_WORKER=false to use one container per candidate"
                )
            time.sleep(POLL_S)

    # --- one job -------------------------------------------------------------------------------

    def fresh_job_backend(self) -> DockerBackend:
        """The warm worker runs only our runner: a one-off job gets a container of its own."""
        return DockerBackend(image=self.image)

    def run(self, job: Job) -> RunOutcome:
        for d in (job.job_dir, job.data_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"job input directory missing: {d}")
        job.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._run_once(job)
        except _SetupFailed as first:
            # The candidate never ran. A fresh container rules out anything this one kept.
            log.warning("warm sandbox: job setup failed (%s); retrying in a fresh container", first)
            try:
                return self._run_once(job)
            except _SetupFailed as again:
                raise InfrastructureFault(
                    f"the warm sandbox worker could not set up a job, twice ({again})",
                    "check the sandbox image and the Docker engine (`docker info`), or set "
                    "NASLOOP_WARM_WORKER=false to use one container per candidate",
                ) from again

    def _run_once(self, job: Job) -> RunOutcome:
        pool = self._pool_for(job)
        n = pool.next_job
        pool.next_job += 1
        request = {
            "uid": pool.uid_base + n % 1000,
            "timeout_s": job.limits.timeout_s,
            "pids": job.limits.pids,
            "fsize_bytes": FSIZE_BYTES,
            "env": {k: v for k, v in pool.env.items() if k not in ("HOME", "TMPDIR")},
            "prove_clean": self.prove_clean,
        }
        job_in = pool.jobs / str(n)
        job_in.mkdir()
        for name in ("config.json", "candidate.py"):
            shutil.copyfile(job.job_dir / name, job_in / name)
            (job_in / name).chmod(0o644)
        job_in.chmod(0o755)
        tmp = job_in / "request.tmp"
        tmp.write_text(json.dumps(request), encoding="utf-8")
        if pool.memory is not None:
            pool.memory.reset()  # the peak from here on is this job's (and the worker's own)
        tmp.replace(job_in / "request.json")
        started = time.monotonic()
        try:
            return self._await_outcome(pool, n, job, started)
        finally:
            shutil.rmtree(job_in, ignore_errors=True)
            shutil.rmtree(pool.status / str(n), ignore_errors=True)

    def _await_outcome(self, pool: WarmPool, n: int, job: Job, started: float) -> RunOutcome:
        outcome_path = pool.status / str(n) / "outcome.json"
        deadline = started + job.limits.timeout_s + GRACE_S
        next_check = started + 1.0
        while not outcome_path.exists():
            now = time.monotonic()
            if now > deadline:
                # The worker did not even report a timeout: it is stuck. Replace it.
                tail = self._log_tail(pool.container)
                self.close()
                return RunOutcome(None, True, False, tail, time.monotonic() - started)
            if now > next_check:
                next_check = now + 1.0
                if not self._running(pool):
                    return self._worker_died(pool, started)
            time.sleep(POLL_S)
        outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
        peak_mb = pool.memory.peak_mb() if pool.memory is not None else None
        for name in ("report.json", "predictions.json", "net.pt2"):  # net.pt2: for the verifier
            source = pool.status / str(n) / name
            if source.is_file():
                with contextlib.suppress(OSError):  # the out dir's bound: as if never written
                    shutil.copyfile(source, job.out_dir / name)
        self._retire_unless_clean(pool, n, outcome)
        if outcome.get("setup_failed"):
            raise _SetupFailed(" ".join(str(outcome["setup_failed"]).split())[:300])
        exit_code = outcome["exit_code"]
        return RunOutcome(
            exit_code=exit_code if isinstance(exit_code, int) else None,
            timed_out=bool(outcome["timed_out"]),
            oom_killed=bool(outcome["oom_killed"]),
            log_tail=str(outcome["log_tail"]),
            seconds=float(outcome["seconds"]),
            reached_candidate=outcome.get("reached_candidate") is True,
            peak_memory_mb=peak_mb,
        )

    def _retire_unless_clean(self, pool: WarmPool, n: int, outcome: dict[str, Any]) -> None:
        """After every job: keep the container only if the worker proved it clean."""
        self.clear_seconds.append(float(outcome.get("clear_s", 0.0)))
        self.prove_seconds.append(float(outcome.get("prove_s", 0.0)))
        if outcome.get("clean") is True and not outcome.get("setup_failed"):
            return
        reasons = "; ".join(str(d) for d in outcome.get("dirt") or []) or "job setup failed"
        log.warning(
            "warm sandbox: retiring container %s after job %d, not provably clean (%s); "
            "a fresh container takes the next job",
            pool.container.name,
            n,
            reasons[:500],
        )
        self.retired += 1
        self.close()  # the worker has exited already; its pool dir goes with it

    def _worker_died(self, pool: WarmPool, started: float) -> RunOutcome:
        """The worker itself ended mid-job: an OOM despite the job going first is the job's;
        anything else (killed, the engine stopping its containers) is ours, not the job's."""
        state = pool.container.attrs.get("State", {})
        tail = self._log_tail(pool.container)
        self.close()
        if not state.get("OOMKilled"):
            raise BackendUnavailable(
                f"the warm sandbox worker stopped in the middle of a job (exit code "
                f"{state.get('ExitCode')}, {state.get('Status') or 'gone'})",
                "check the Docker engine (`docker info`), or set NASLOOP_WARM_WORKER=false",
            )
        return RunOutcome(
            exit_code=state.get("ExitCode"),
            timed_out=False,
            oom_killed=bool(state.get("OOMKilled")),
            log_tail=tail,
            seconds=time.monotonic() - started,
        )
