"""Candidates evaluated on a Ray cluster: one Ray task per evaluation, on any node and GPU.

We use an existing distributed engine rather than a scheduler of our own. What decides trust and
reuse stays with the process that runs the search: the static precheck and the result cache are
the local `Evaluator`'s, so a cluster never trains a candidate the run already has a result for,
and a cached result never depends on which node produced it. Only code that needs a sandbox
travels, as a Ray task that asks for its CPUs and GPUs.

On a worker, each Ray worker process builds its `Evaluator` once, from the same settings and with
the same sandbox backend, and keeps it. Nothing of a candidate may outlive its task, because Ray
ends a worker process without any cleanup (at the end of a job it exits at once, no `atexit`):
so Docker runs one container per candidate there, never the warm worker, whose container would
be left running; a container orphaned by a killed worker is reaped by the next evaluation on
that host. The dataset is prepared once per node: the first worker there prepares it under a
file lock, the others find it ready. GPUs are Ray's to hand out: the task asks for `num_gpus`,
and the sandbox gets exactly the GPU ids Ray assigned to it. The worker scores the predictions
against labels on its own node, as the local evaluator does: labels never enter a sandbox.

Failures are never lost. A worker process or a whole node that dies mid-evaluation makes Ray run
the task again (`max_retries`, NASLOOP_RAY_RETRIES); once the retries are spent the candidate is
recorded as failed (kind `killed`, "lost its Ray worker ...") and not cached, so the search goes
on. A cluster that cannot be reached, or a worker that cannot build its sandbox or dataset, raises
BackendUnavailable: the run stops and can be resumed.

`ray` is an optional extra (`pip install 'nasloop[ray]'`), imported here only when used.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from sandbox.backends.base import BackendUnavailable
from sandbox.data import OFFLINE_DATASET, DatasetUnavailable, UnknownDataset
from sandbox.evaluate import Evaluator, evaluator_from_settings
from sandbox.locks import exclusive
from sandbox.result import EvalResult, RayPlacement, new_result
from sandbox.settings import SandboxSettings

TASK_NAME = "nasloop-evaluate"  # a busy worker's process title is `ray::nasloop-evaluate`
LOST_KIND = "killed"
# The head's client server starts a process per client; when that fails the message says this.
CLIENT_SERVER_FAILED = "Starting Ray client server failed"
CLIENT_SERVER_ATTEMPTS = 3
CLIENT_SERVER_PAUSE_S = 2.0  # times the attempt number
log = logging.getLogger(__name__)

_connect_lock = threading.Lock()


class RayExecutor:
    """`evaluate(code)` through a Ray cluster; `local` supplies the precheck and the cache.

    `address`: None for `ray.init()`'s own choice (RAY_ADDRESS when set, else a new local
    cluster), or a `ray://HOST:PORT` client address.
    """

    def __init__(
        self,
        settings: SandboxSettings,
        local: Evaluator,
        address: str | None = None,
        retries: int = 2,
    ) -> None:  # `local`: the Evaluator whose `prepare` and `record` run on this host
        self.settings = settings
        self.local = local
        self.dataset = local.dataset
        self.address = address
        self.retries = retries
        self._task: Any = None
        self._inflight: dict[str, Any] = {}  # code hash -> the ObjectRef being computed
        self._inflight_lock = threading.Lock()
        self._dry_run_lock = threading.Lock()  # the local sandbox takes one job at a time

    # -- connection ---------------------------------------------------------------------------

    def check(self) -> None:
        """Connect (once per process) and make sure the cluster can run our tasks at all."""
        self._remote_task()

    def _remote_task(self) -> Any:
        with _connect_lock:
            if self._task is None:
                self._task = self._connect()
            return self._task

    def _connect(self) -> Any:
        where = self.address or "a local Ray cluster"
        try:
            import ray
        except ImportError:
            raise BackendUnavailable(
                "NASLOOP_EXECUTOR asks for Ray but it is not installed: pip install 'nasloop[ray]'"
            ) from None
        if not ray.is_initialized():
            fix = "start one (`ray start --head --ray-client-server-port 10001`) or check "
            fix += "NASLOOP_EXECUTOR"
            if self.address and (refused := _unreachable(self.address)):
                # a quick answer: the client itself would retry for ~35 s before giving up
                raise BackendUnavailable(f"cannot reach {where} ({refused}): {fix}")
            for attempt in range(1, CLIENT_SERVER_ATTEMPTS + 1):
                try:
                    with warnings.catch_warnings():  # its connection warnings: our message says it
                        warnings.simplefilter("ignore")
                        ray.init(
                            address=self.address,
                            logging_level=logging.WARNING,
                            log_to_driver=False,  # worker output stays in the cluster's logs
                            configure_logging=False,
                        )
                    break
                except Exception as exc:  # ConnectionError, grpc errors, timeouts: "not here"
                    # ...except the client server's own start-up for this client, which a busy
                    # head can fail once (seen right after a killed client): worth a second try
                    transient = CLIENT_SERVER_FAILED in str(exc)
                    if not transient or attempt == CLIENT_SERVER_ATTEMPTS:
                        raise BackendUnavailable(
                            f"cannot reach {where} ({_one_line(exc)}): {fix}"
                        ) from None
                    log.warning("Ray client server did not start (attempt %d); retrying", attempt)
                    ray.shutdown()
                    time.sleep(CLIENT_SERVER_PAUSE_S * attempt)
        resources = ray.cluster_resources()
        gpus = self._num_gpus(resources)
        if gpus > resources.get("GPU", 0):
            raise BackendUnavailable(
                f"each candidate asks for {gpus} GPU(s) (NASLOOP_GPUS={self.settings.gpus}) but "
                f"{where} has {resources.get('GPU', 0):g}: set NASLOOP_GPUS or add GPU nodes"
            )
        return ray.remote(_evaluate_on_worker).options(
            name=TASK_NAME,
            num_cpus=max(1, self.settings.threads),
            num_gpus=gpus,
            max_retries=self.retries,  # system failures only: a dead worker process or node
            retry_exceptions=False,  # an exception in our code is not fixed by running it again
        )

    def _num_gpus(self, resources: dict[str, float]) -> int:
        """GPUs per candidate: explicit ids count; `auto` is one when the cluster has any."""
        if self.settings.gpus == "none":
            return 0
        if self.settings.gpus == "auto":
            return 1 if resources.get("GPU", 0) > 0 else 0
        return len(self.settings.gpus.split(","))

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, code: str) -> EvalResult:
        digest, answer = self.local.prepare(code)
        if answer is not None:
            return answer  # no sandbox needed: answered here (cache or precheck)
        task = self._remote_task()
        import ray
        import ray.exceptions

        # identical code in flight twice (two branches of one round): train it once, share it
        with self._inflight_lock:
            ref = self._inflight.get(digest)
            shared = ref is not None
            if ref is None:
                ref = self._inflight[digest] = task.remote(self._worker_settings(), code)
        try:
            result: EvalResult = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # our own code raised on the worker
            if isinstance(exc, BackendUnavailable | DatasetUnavailable | UnknownDataset):
                raise BackendUnavailable(
                    f"a Ray worker cannot evaluate: {_one_line(exc)}"
                ) from None
            raise
        except ray.exceptions.RayError as exc:  # the worker or its node died, retries spent
            return self._lost(digest, exc)
        except ConnectionError as exc:  # the Ray client lost the cluster
            raise BackendUnavailable(f"lost the Ray cluster ({_one_line(exc)})") from None
        else:  # cached before it leaves the in-flight map: a twin finds one or the other
            result["executor"] = "ray"
            if shared:
                result["cached"] = True  # the twin's result: trained once
            else:
                self.local.record(digest, result)
        finally:
            if not shared:
                with self._inflight_lock:
                    self._inflight.pop(digest, None)
        return result

    def dry_run(self, code: str) -> EvalResult:
        """The check's cheap stage, in this machine's own sandbox: it needs no GPU, and a round
        trip to the cluster would cost more than the dry run itself."""
        with self._dry_run_lock:
            return self.local.dry_run(code)

    def _lost(self, digest: str, exc: BaseException) -> EvalResult:
        """A failed result for a candidate whose worker died every time; never cached."""
        attempts = self.retries + 1
        message = (
            f"lost its Ray worker: the process or node evaluating it died "
            f"{attempts} time(s) ({type(exc).__name__}); not the candidate's fault as far as "
            "we know"
        )
        result = new_result(LOST_KIND, message, digest, backend="ray", dataset=self.dataset.name)
        result["traceback"] = str(exc)[-2000:]
        result["executor"], result["lost"] = "ray", True
        return result

    def _worker_settings(self) -> str:
        """The sandbox settings a worker evaluates with: the dataset this run really uses."""
        update: dict[str, Any] = {}
        fell_back = "dataset" not in self.settings.model_fields_set
        if fell_back and self.dataset.name == OFFLINE_DATASET:  # see prepare_with_fallback
            update["dataset"] = OFFLINE_DATASET
        settings = self.settings.model_copy(update=update)
        return settings.model_dump_json(include=set(SandboxSettings.model_fields))


# -- on the worker ------------------------------------------------------------------------------

_worker_lock = threading.Lock()
_worker_evaluators: dict[tuple[str, str], Evaluator] = {}


def _evaluate_on_worker(settings_json: str, code: str) -> EvalResult:
    """The Ray task: evaluate `code` with this worker's evaluator, say where it ran."""
    import ray

    gpus = ",".join(str(g) for g in ray.get_gpu_ids()) or "none"
    result = worker_evaluator(settings_json, gpus).evaluate(code)
    context = ray.get_runtime_context()
    result["ray"] = RayPlacement(
        node_id=context.get_node_id(),
        worker_id=context.get_worker_id(),
        host=socket.gethostname(),
        pid=os.getpid(),
        gpus=gpus,
    )
    return result


def worker_evaluator(settings_json: str, gpus: str) -> Evaluator:
    """This worker process's evaluator for these settings and GPUs, built on first use.

    Its result cache is off (the search's host keeps the cache) and its runs dir is node-local
    scratch; the dataset is prepared under a per-node lock, so once per node.
    """
    key = (settings_json, gpus)
    with _worker_lock:
        if key not in _worker_evaluators:
            settings = SandboxSettings.model_validate_json(settings_json)
            scratch = Path(tempfile.gettempdir()) / "nasloop-ray"
            update = {"gpus": gpus, "runs_dir": scratch, "warm_worker": False}
            settings = settings.model_copy(update=update)
            # dataset preparation: once per node, the node's other workers wait for it
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            with exclusive(settings.data_dir / ".nasloop-prepare.lock"):
                evaluator = evaluator_from_settings(settings, announce=False)
            evaluator.cache = None
            _worker_evaluators[key] = evaluator
        return _worker_evaluators[key]


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at a `ray://HOST:PORT` address, or None when a TCP connect works."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as exc:
        return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
