"""Where an Evaluator's candidates train: here, one at a time, or on a Ray cluster.

Both executors sit in front of one `Evaluator` and answer `evaluate(code)` with an `EvalResult`:
`LocalExecutor` calls it under a lock; `RayExecutor` keeps the Evaluator's `prepare` and `record`
on this host and sends the sandbox job to the cluster. `make_executor` picks one from
NASLOOP_EXECUTOR.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from sandbox.evaluate import Evaluator
from sandbox.result import EvalResult
from sandbox.settings import SandboxSettings

if TYPE_CHECKING:  # ray_executor is imported only when a Ray executor is asked for
    from sandbox.ray_executor import RayExecutor

_local_lock = threading.Lock()


class CandidateEvaluator(Protocol):
    """What trains a candidate: an `Evaluator`, or an executor in front of one."""

    def evaluate(self, code: str) -> EvalResult: ...


class LocalExecutor:
    """Evaluations in this process, one at a time.

    One machine's sandbox trains one candidate at a time (one GPU; one warm container): the
    branches of a parallel round overlap their LLM calls and queue here for training.
    """

    def __init__(self, evaluator: CandidateEvaluator) -> None:
        self.evaluator = evaluator

    def check(self) -> None:
        pass

    def evaluate(self, code: str) -> EvalResult:
        with _local_lock:
            return self.evaluator.evaluate(code)

    def dry_run(self, code: str) -> EvalResult:
        """The check's sandbox stage (Evaluator.dry_run), queued with training: one sandbox."""
        dry_run = getattr(self.evaluator, "dry_run", None)
        if dry_run is None:
            raise TypeError(f"{type(self.evaluator).__name__} has no dry_run: use an Evaluator")
        with _local_lock:
            result: EvalResult = dry_run(code)
            return result


def make_executor(settings: SandboxSettings, evaluator: Evaluator) -> LocalExecutor | RayExecutor:
    """The executor NASLOOP_EXECUTOR names: `local`, or a Ray cluster (`ray`, `ray://HOST:PORT`)
    with NASLOOP_RAY_RETRIES runs again of an evaluation whose worker died."""
    if settings.executor == "local":
        return LocalExecutor(evaluator)
    from sandbox.ray_executor import RayExecutor

    address = None if settings.executor == "ray" else settings.executor
    return RayExecutor(settings, evaluator, address, settings.ray_retries)
