"""The real runner in the real process sandbox: which side failed, and the self-test.

A dataset the sandbox cannot read stops evaluation as an infrastructure fault, whatever the
candidate; a candidate that exits the interpreter while it is imported, after deleting whatever
it can, is still charged. No Docker needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.backends.process import ProcessBackend
from sandbox.cache import ResultCache
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.faults import InfrastructureFault
from sandbox.selftest import KNOWN_GOOD_NET, self_test
from tests.helpers.sandbox_jobs import QUICKER, limits

LIMITS = limits(timeout_s=120)

# Leaves no report, tries to wipe its out dir, and ends the interpreter mid-import.
VANISHES = """
import os, shutil
for name in os.listdir("/out") if os.path.isdir("/out") else []:
    shutil.rmtree(os.path.join("/out", name), ignore_errors=True)
os._exit(1)
"""


@pytest.fixture
def unreadable(mnist: PreparedDataset, tmp_path: Path) -> PreparedDataset:
    """A copy of the dataset whose training images are no tensor file at all."""
    root = tmp_path / mnist.root.name
    shutil.copytree(mnist.root, root)
    (root / "public" / "train_images.pt").write_bytes(b"not a tensor file" * 100)
    return PreparedDataset.load(root)


def evaluator(data: PreparedDataset, cache: ResultCache | None = None) -> Evaluator:
    return Evaluator(data, ProcessBackend(), dict(QUICKER), LIMITS, cache, precheck=False)


def test_an_unreadable_dataset_is_a_fault_and_nothing_is_cached(
    unreadable: PreparedDataset, tmp_path: Path
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    with pytest.raises(InfrastructureFault) as caught:
        evaluator(unreadable, cache).evaluate(KNOWN_GOOD_NET)
    fault = caught.value
    assert "train_images.pt cannot be read" in fault.cause, fault
    assert "NASLOOP_DATA_DIR" in fault.fix
    with cache._connect() as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0
    with pytest.raises(InfrastructureFault):  # the self-test says the same before any candidate
        self_test(evaluator(unreadable))


def test_a_candidate_that_exits_while_imported_is_charged(mnist: PreparedDataset) -> None:
    result = evaluator(mnist).evaluate(VANISHES)
    assert result["kind"] == "runtime" and "exited with code 1" in result["message"], result


def test_the_self_test_trains_a_known_good_net_and_caches_nothing(
    mnist: PreparedDataset, tmp_path: Path
) -> None:
    cache = ResultCache(tmp_path / "cache.sqlite")
    seconds = self_test(evaluator(mnist, cache))
    assert 0 < seconds < LIMITS.timeout_s
    with cache._connect() as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0
