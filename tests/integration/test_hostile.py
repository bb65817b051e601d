"""The hostile-candidate corpus (issue 5): programs that attack the sandbox, through both backends.

Each case must be stopped within its limit, classified, reported with a useful message, and leave
the host as it was: nothing of its jobs left (the `nothing_left_behind` fixture), no file owned
by a sandbox uid in the host's usual places, no byte received by a listener on the host. The last
test trains a normal candidate to show that the sandbox still works after all of it.
"""

from __future__ import annotations

import os
import resource
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends.base import LOG_TAIL_BYTES, Backend, Limits
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.leftovers import is_sandbox_uid
from tests.helpers.sandbox_jobs import QUICK, TRAIN, across_backends, source

pytestmark = [
    pytest.mark.docker,
    pytest.mark.usefixtures("nothing_left_behind"),
    pytest.mark.xdist_group(__name__),
]

SLACK_S = 12  # start-up, kill and clean-up on top of a wall-time limit (2-core machine)


@dataclass(frozen=True)
class Case:
    name: str
    attack: str  # its class: the line of defence it meets (see across_backends)
    kinds: tuple[str, ...]  # acceptable (status "ok" or a failure kind)
    words: str  # in the message
    timeout_s: float = 10
    memory_mb: int = 1024


CASES = {
    c.name: c
    for c in [
        Case("loop_in_forward", "wall-time kill", ("timeout",), "wall-time limit"),
        Case("loop_in_init", "wall-time kill", ("timeout",), "wall-time limit"),
        Case("loop_at_import", "wall-time kill", ("timeout",), "wall-time limit"),
        Case("ignore_sigterm", "SIGTERM ignored", ("timeout",), "wall-time limit"),
        Case("double_fork_daemon", "leftover processes", ("ok",), "trained", timeout_s=60),
        Case("stray_threads", "leftover processes", ("ok",), "trained", timeout_s=60),
        Case("orphan_subprocess", "leftover processes", ("ok",), "trained", timeout_s=60),
        Case("os_exit_mid_train", "early exit", ("runtime",), "exited with code 0", timeout_s=60),
        Case("sys_exit_mid_train", "early exit", ("runtime",), "sys.exit(0)", timeout_s=60),
        Case("giant_model", "memory limit", ("oom",), "memory", timeout_s=60),
    ]
}


def run_case(
    sandbox: Backend, data: PreparedDataset, code: str, timeout_s: float, memory_mb: int = 1024
) -> dict[str, Any]:
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, pids=64, scratch_mb=64)
    evaluator = Evaluator(data, sandbox, dict(QUICK), limits, precheck=False)
    return dict(evaluator.evaluate(code))


def outcome(result: dict[str, Any]) -> str:
    return "ok" if result["status"] == "ok" else str(result["kind"])


# --- host-side checks ------------------------------------------------------------------------


def host_places(data: PreparedDataset) -> list[Path]:
    """Where an escaped write would land on the host."""
    places = [Path(p) for p in ("/", "/root", "/tmp", "/var/tmp", "/dev/shm", "/etc", "/run")]
    places += [Path("/work"), Path.cwd(), Path(tempfile.gettempdir()), Path.home()]
    places += [data.public_dir, data.root, Path(__file__).parents[2]]
    places += list(Path("/home").glob("*"))
    return [p for p in dict.fromkeys(places) if p.is_dir()]


def sandbox_owned_files(places: list[Path]) -> list[Path]:
    """Files (one level deep) owned by a sandbox uid: only a sandboxed candidate makes those."""
    found = []
    for place in places:
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for entry in entries:
            try:
                if is_sandbox_uid(entry.stat(follow_symlinks=False).st_uid):
                    found.append(Path(entry.path))
            except OSError:
                continue
    return found


@pytest.fixture
def host_untouched(mnist: PreparedDataset) -> Iterator[list[Path]]:
    places = host_places(mnist)
    before = set(sandbox_owned_files(places))
    yield places
    after = set(sandbox_owned_files(places))
    assert after - before == set(), "a sandboxed candidate left files on the host"


class Listener(threading.Thread):
    """A TCP and a UDP socket on all the host's addresses, recording anything that arrives."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.tcp = socket.create_server(("0.0.0.0", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", self.port))
        self.tcp.settimeout(0.2)
        self.udp.settimeout(0.2)
        self.received: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, addr = self.tcp.accept()
                self.received.append(f"tcp connection from {addr}")
                conn.close()
            except OSError:
                pass
            try:
                payload, addr = self.udp.recvfrom(1024)
                self.received.append(f"udp {payload!r} from {addr}")
            except OSError:
                pass

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.tcp.close()
        self.udp.close()


# --- the corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "backend"),
    across_backends({name: case.attack for name, case in CASES.items()}),
    indirect=["backend"],
)
def test_hostile_candidate_is_contained(
    backend: Backend,
    mnist: PreparedDataset,
    host_untouched: list[Path],
    name: str,
) -> None:
    case = CASES[name]
    result = run_case(backend, mnist, source(case.name), case.timeout_s, case.memory_mb)
    assert outcome(result) in case.kinds, result
    assert case.words in result["message"], result
    assert result["wall_seconds"] < case.timeout_s + SLACK_S, result
    if result["status"] != "ok":
        assert result["val_accuracy"] is None


def test_writes_outside_the_scratch_reach_nothing(
    backend: Backend,
    mnist: PreparedDataset,
    host_untouched: list[Path],
) -> None:
    extra = [Path("/work/main/runs"), Path("/var/lib/docker"), Path("/usr/local/lib")]
    markers = [p / "NASLOOP_PWNED" for p in [*host_untouched, *extra]]
    for marker in markers:  # a stale marker from an earlier, broken run would hide nothing
        assert not marker.exists(), f"{marker} exists before the test"
    result = run_case(backend, mnist, source("write_outside"), 30)
    assert outcome(result) == "runtime", result
    assert "WROTE" in result["message"], result  # it ran, and says where it could write
    leaked = [m for m in markers if m.exists()]
    for marker in leaked:
        marker.unlink()
    assert leaked == [], f"the candidate wrote on the host: {leaked} ({result['message']})"
    assert "via symlink" not in result["message"]


def test_network_reaches_nothing(
    backend: Backend,
    mnist: PreparedDataset,
) -> None:
    listener = Listener()
    listener.start()
    try:
        code = source("network_connect").replace("HOST_PORT = 0", f"HOST_PORT = {listener.port}", 1)
        result = run_case(backend, mnist, code, 30)
    finally:
        listener.stop()
    assert outcome(result) == "runtime", result
    assert "NET" in result["message"], result  # it ran, and says what each attempt met
    assert "connected" not in result["message"], result
    assert "resolved" not in result["message"], result
    assert listener.received == [], f"the host listener was reached: {listener.received}"


def test_output_flood_is_bounded(
    backend: Backend,
    mnist: PreparedDataset,
    host_untouched: list[Path],
) -> None:
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    timeout_s = 15
    result = run_case(backend, mnist, source("flood_output"), timeout_s)
    assert outcome(result) in ("ok", "timeout"), result
    assert result["wall_seconds"] < timeout_s + SLACK_S, result
    assert len(result["traceback"].encode()) <= LOG_TAIL_BYTES
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss) / 1024
    assert grown_mib < 256, f"the host process grew by {grown_mib:.0f} MiB reading the flood"


def test_monkeypatched_torch_earns_what_its_predictions_earn(
    backend: Backend,
    mnist: PreparedDataset,
) -> None:
    result = run_case(backend, mnist, source("monkeypatch_torch"), 60)
    assert result["status"] == "ok", result
    share_of_zero = float((mnist.val_labels() == 0).double().mean())  # class 0 everywhere
    assert result["val_accuracy"] == pytest.approx(share_of_zero)
    assert result["val_accuracy"] < 0.25


def test_out_dir_cannot_fill_the_host_disk(
    backend: Backend,
    mnist: PreparedDataset,
) -> None:
    """The out dir is the one writable host directory: writing 1 GiB there must be refused."""
    result = run_case(backend, mnist, source("fill_out_dir"), 30)
    assert outcome(result) == "runtime", result
    if "FILLED " in result["message"]:  # it could still report: how much got through
        written = int(result["message"].split("FILLED ")[1].split()[0])
        assert written < 512, f"the candidate wrote {written} MiB to the host's disk"
    else:  # the bounded out dir was full, so even the runner's report could not be written
        assert "before reporting" in result["message"], result
        assert "No space left on device" in result["traceback"], result


def test_zz_next_candidate_trains_normally(
    backend: Backend,
    mnist: PreparedDataset,
) -> None:
    """After the whole corpus, on the same machine: the sandbox still trains a normal CNN."""
    limits = Limits(timeout_s=90, memory_mb=2048, pids=128, scratch_mb=64)
    result = dict(Evaluator(mnist, backend, dict(TRAIN), limits).evaluate(source("small_cnn")))
    assert result["status"] == "ok", result
    accuracy = result["val_accuracy"]
    assert isinstance(accuracy, float) and accuracy > 0.5  # chance is 0.1
