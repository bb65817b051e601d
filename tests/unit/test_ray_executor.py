"""The Ray executor's pieces that need no cluster, and the local executor's one-at-a-time training.

The Ray cluster itself is tests/integration/test_ray.py's.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import pytest

from sandbox.backends.base import BackendUnavailable
from sandbox.executors import LocalExecutor
from sandbox.ray_executor import RayExecutor, _unreachable
from sandbox.result import EvalResult, new_result
from sandbox.settings import SandboxSettings
from tests.helpers.paths import ROOT


@dataclass
class FakeDataset:
    name: str = "mnist5k"


class FakeLocal:
    dataset = FakeDataset()
    cache = None


def executor(**settings: Any) -> RayExecutor:
    return RayExecutor(SandboxSettings(**settings), cast(Any, FakeLocal()), "ray://127.0.0.1:1")


@pytest.mark.parametrize(
    ("gpus", "cluster_gpus", "asked"),
    [("none", 4, 0), ("auto", 0, 0), ("auto", 8, 1), ("0,1", 8, 2), ("3", 8, 1)],
)
def test_gpus_per_candidate(gpus: str, cluster_gpus: int, asked: int) -> None:
    assert executor(gpus=gpus)._num_gpus({"CPU": 4, "GPU": cluster_gpus}) == asked


def test_workers_get_the_dataset_this_run_really_uses() -> None:
    # the default dataset fell back to the offline one here: the workers must not try cifar10
    fell_back = executor()._worker_settings()
    assert SandboxSettings.model_validate_json(fell_back).dataset == "mnist5k"
    # a dataset named explicitly is passed on as it is
    named = executor(dataset="cifar100")._worker_settings()
    assert SandboxSettings.model_validate_json(named).dataset == "cifar100"
    assert "api_key" not in fell_back  # only the sandbox's settings travel


def test_nothing_listening_is_a_quick_answer() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        started = time.monotonic()
        assert _unreachable(f"ray://127.0.0.1:{port}") is not None
    assert time.monotonic() - started < 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert _unreachable(f"ray://127.0.0.1:{s.getsockname()[1]}") is None


def test_without_ray_installed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'nasloop\[ray\]'"):
        executor().check()


def test_the_search_never_imports_ray_unless_asked() -> None:
    probe = (
        "import sys, agent.run, graphs.nas, tools.train_candidate; "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_local_executor_trains_one_candidate_at_a_time() -> None:
    spans: list[tuple[float, float]] = []

    class Slow:
        def evaluate(self, code: str) -> EvalResult:
            start = time.monotonic()
            time.sleep(0.2)
            spans.append((start, time.monotonic()))
            return new_result("ok", "", code)

    local = LocalExecutor(Slow())
    threads = [threading.Thread(target=local.evaluate, args=(str(i),)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


class FlakyClientServerRay:
    """Just enough of `ray` for _connect: init fails `failures` times as a busy head's client
    server does ("Starting Ray client server failed"), then connects."""

    def __init__(self, failures: int, message: str) -> None:
        self.failures, self.message = failures, message
        self.inits = self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **_: Any) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionError(f"Initialization failure from server: {self.message}")

    def shutdown(self) -> None:
        self.shutdowns += 1

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0}

    def remote(self, function: Any) -> Any:
        return type("Remote", (), {"options": staticmethod(lambda **_: function)})()


@pytest.mark.parametrize(
    ("failures", "message", "inits", "connects"),
    [
        (2, "RuntimeError: Starting Ray client server failed. See ...", 3, True),  # retried
        (3, "RuntimeError: Starting Ray client server failed. See ...", 3, False),  # bounded
        (1, "some other failure", 1, False),  # not retried: only that start-up is transient
    ],
)
def test_a_client_server_that_fails_to_start_is_retried_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, failures: int, message: str, inits: int, connects: bool
) -> None:
    fake = FlakyClientServerRay(failures, message)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr("sandbox.ray_executor.CLIENT_SERVER_PAUSE_S", 0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        ray = RayExecutor(
            SandboxSettings(), cast(Any, FakeLocal()), f"ray://127.0.0.1:{s.getsockname()[1]}"
        )
        if connects:
            ray.check()
        else:
            with pytest.raises(BackendUnavailable, match="cannot reach ray://"):
                ray.check()
    assert fake.inits == inits and fake.shutdowns == min(failures, inits - 1)
