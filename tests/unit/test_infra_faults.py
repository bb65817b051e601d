"""Which side failed: a job that never reached the candidate is ours, never a cached result.

A scripted backend stands in for the sandbox (the real backends and the real runner are
exercised in tests/integration/test_infra_process.py and test_infra_docker.py).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from sandbox import evaluate
from sandbox.backends.base import CANDIDATE_MARKER, Job, Limits, MarkerWatch, RunOutcome
from sandbox.cache import ResultCache
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.faults import InfrastructureFault
from sandbox.inside import WORKER, runner
from tests.helpers.sandbox_jobs import NET, ScriptedBackend


def scripted(reached: bool | None, tail: str = "", exit_code: int = 1) -> ScriptedBackend:
    """A job that ended with `exit_code`, having reached the candidate or not."""
    done = RunOutcome(exit_code, False, False, tail, 1.0, reached_candidate=reached)
    return ScriptedBackend(outcome=done)


class BrokenBackend:
    name = "docker"

    def run(self, job: Job) -> RunOutcome:
        raise ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file'))")


def make(mnist: PreparedDataset, backend: object, cache: ResultCache | None) -> Evaluator:
    return Evaluator(mnist, backend, {}, Limits(timeout_s=7, memory_mb=999), cache)  # type: ignore[arg-type]


def test_a_job_that_never_reached_the_candidate_is_a_fault_not_a_result(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    tail = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'torch'\n"
    backend = scripted(reached=False, tail=tail)
    with pytest.raises(InfrastructureFault) as caught:
        make(mnist, backend, cache).evaluate(NET)
    fault = caught.value
    assert "No module named 'torch'" in fault.cause and "before the candidate" in fault.cause
    assert "torch" in fault.fix and "sandbox.image build" in fault.fix
    assert "\n" not in str(fault)
    # not cached: the same code goes to the sandbox again once it works
    with pytest.raises(InfrastructureFault):
        make(mnist, backend, cache).evaluate(NET)
    assert len(backend.jobs) == 2
    with cache._connect() as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0


def test_the_same_exit_after_the_marker_is_the_candidates_and_cached(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    backend = scripted(reached=True, tail=f"{CANDIDATE_MARKER}\nbye\n")
    result = make(mnist, backend, cache).evaluate(NET)
    assert result["kind"] == "runtime" and "exited with code 1" in result["message"]
    assert make(mnist, backend, cache).evaluate(NET)["cached"] is True
    assert len(backend.jobs) == 1


def test_a_backend_that_raises_is_a_fault_naming_the_engine(mnist: PreparedDataset) -> None:
    with pytest.raises(InfrastructureFault) as caught:
        make(mnist, BrokenBackend(), None).evaluate(NET)
    assert "ConnectionError" in caught.value.cause and "docker info" in caught.value.fix


def test_a_dataset_the_sandbox_cannot_read_names_the_dataset_fix(mnist: PreparedDataset) -> None:
    tail = "[runner] runtime: OSError: the dataset's train_images.pt cannot be read (during setup)"
    with pytest.raises(InfrastructureFault) as caught:
        make(mnist, scripted(reached=False, tail=tail), None).evaluate(NET)
    assert "train_images.pt" in caught.value.cause and "NASLOOP_DATA_DIR" in caught.value.fix


def test_a_result_cached_by_one_runner_version_is_not_served_to_another(
    mnist: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    backend = scripted(reached=True)
    make(mnist, backend, cache).evaluate(NET)
    assert make(mnist, backend, cache).evaluate(NET)["cached"] is True  # same runner: served
    monkeypatch.setattr(evaluate, "RUNNER_VERSION", "another-runner")
    assert make(mnist, backend, cache).evaluate(NET)["cached"] is False  # new runner: trained
    assert len(backend.jobs) == 2


def test_the_runner_version_is_the_hash_of_the_runner_file() -> None:
    import hashlib

    digest = hashlib.sha256(Path(runner.__file__).read_bytes()).hexdigest()
    assert digest.startswith(evaluate.RUNNER_VERSION)


def test_a_result_of_one_backend_is_not_served_to_another(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    process, docker = scripted(reached=True), scripted(reached=True)
    docker.name = "docker"
    make(mnist, process, cache).evaluate(NET)
    assert make(mnist, docker, cache).evaluate(NET)["cached"] is False
    assert (len(process.jobs), len(docker.jobs)) == (1, 1)


@pytest.mark.parametrize("cut", range(1, len(CANDIDATE_MARKER)))
def test_the_marker_is_found_across_any_chunk_boundary(cut: int) -> None:
    text = f"torch imported\n{CANDIDATE_MARKER}\n".encode()
    at = text.index(CANDIDATE_MARKER.encode()) + cut
    watch = MarkerWatch()
    watch.feed(text[:at])
    assert not watch.seen
    watch.feed(text[at:])
    assert watch.seen


def test_runner_and_worker_print_and_watch_the_same_marker() -> None:
    assert runner.CANDIDATE_MARKER == CANDIDATE_MARKER
    worker_marker = re.search(r'^MARKER = b"(.*)"$', WORKER.read_text(), re.M)
    assert worker_marker is not None and worker_marker[1] == CANDIDATE_MARKER


def test_fault_message_is_one_line_cause_then_fix() -> None:
    fault = InfrastructureFault("engine\ngone", "start  it")
    assert str(fault) == "engine gone: start it" and (fault.cause, fault.fix) == (
        "engine gone",
        "start it",
    )
    # A Ray worker's fault reaches the driver pickled (sandbox/ray_executor.py): it must arrive
    # whole, its cause and fix apart, as the run's one line names them
    back = pickle.loads(pickle.dumps(fault))
    assert type(back) is InfrastructureFault
    assert (back.cause, back.fix, str(back)) == ("engine gone", "start it", "engine gone: start it")
