"""A warm pool stays clean: no job can touch the ones after it (issue 19).

Each hostile candidate (tests/candidates/warm_*.py) attacks the jobs that follow it in the same
warm container: names claimed in advance with mode 000, a shared tmpfs filled, a process that
outlives its job by fighting whoever comes to kill it, SysV IPC left behind. After each, in the
SAME pool, honest candidates must score `ok` and within 0.5 points of what they score in a fresh
container, and a probe job must find nothing of the attacker: no process, no file in a writable
place, no IPC object. One pool serves the whole module, as in a search.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends.docker import DockerBackend
from sandbox.backends.warm import WarmDockerBackend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.image import host_mounts
from tests.helpers.leftovers import sandbox_processes
from tests.helpers.sandbox_jobs import QUICKER, limits, source

pytestmark = [
    pytest.mark.docker,
    pytest.mark.usefixtures("nothing_left_behind"),
    pytest.mark.xdist_group(__name__),
]

QUICK = {**QUICKER, "seed": 0}  # small and deterministic: same data, same seed
# A generous wall-time limit: these tests are about what is left, not speed (busy 2-core CI).
LIMITS = limits(timeout_s=300, memory_mb=1024, pids=64)
HONEST = ("small_cnn", "view_flatten")
ATTACKS = ("warm_precreate_names", "warm_fill_tmpfs", "warm_outlive_reaper", "warm_sysv_ipc")

# Reports, as its failure message, what a job can see of the jobs before it. The host paths the
# local image lends read-only (a virtualenv under /tmp, say) are the image's, not a job's leftovers.
PROBE = (
    f"LENT = {tuple(host_mounts())!r}\n"
    + """
import json, os
me = os.getpid()
others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me))
mine = {os.environ["TMPDIR"], os.getcwd()}
files = sorted(os.path.join(place, name) for place in ("/tmp", "/outs", "/dev/shm", "/dev/mqueue")
               for name in os.listdir(place)
               if os.path.join(place, name) not in mine and not name.startswith("torchinductor_")
               and not any(lent == os.path.join(place, name)
                           or lent.startswith(os.path.join(place, name) + "/") for lent in LENT))
files = [f for f in files if not (f.startswith("/outs/") and os.stat(f).st_uid == os.getuid())]
ipc = {kind: open("/proc/sysvipc/" + kind).read().splitlines()[1:]
       for kind in ("shm", "sem", "msg")}
free = {place: os.statvfs(place).f_bfree * os.statvfs(place).f_frsize >> 20
        for place in ("/tmp", "/outs", "/dev/shm")}
info = {"others": others, "files": files, "ipc": ipc, "free_mb": free}
raise RuntimeError("PROBE " + json.dumps(info, separators=(",", ":")))
"""
)


def evaluate(backend: Any, data: PreparedDataset, code: str) -> dict[str, Any]:
    return dict(Evaluator(data, backend, dict(QUICK), LIMITS, precheck=False).evaluate(code))


@pytest.fixture(scope="module")
def pool(sandbox_image: str) -> Iterator[WarmDockerBackend]:
    backend = WarmDockerBackend(image=sandbox_image)
    yield backend
    print(f"\nwarm pool: {backend.started} container(s) started, {backend.retired} retired")
    backend.close()


@pytest.fixture(scope="module")
def fresh_scores(sandbox_image: str, mnist: PreparedDataset) -> dict[str, float]:
    """Each honest candidate's accuracy in a container of its own, started for it alone."""
    scores = {}
    for name in HONEST:
        result = evaluate(DockerBackend(image=sandbox_image), mnist, source(name))
        assert result["status"] == "ok", result
        scores[name] = float(result["val_accuracy"])
    return scores


def probe(backend: WarmDockerBackend, data: PreparedDataset) -> dict[str, Any]:
    result = evaluate(backend, data, PROBE)
    assert result["kind"] == "runtime" and "PROBE " in result["message"], result
    text = result["message"].split("PROBE ", 1)[1].rsplit(" (during import)", 1)[0]
    info: dict[str, Any] = json.loads(text)
    return info


def pool_processes(uid_base: int) -> list[int]:
    """Host processes running as one of a pool's job uids (seen from outside the container)."""
    found = []
    for pid in sandbox_processes():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uid = int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])
        if uid_base <= uid < uid_base + 1000:
            found.append(pid)
    return found


def assert_honest_jobs_unharmed(
    pool: WarmDockerBackend, data: PreparedDataset, fresh: dict[str, float]
) -> None:
    info = probe(pool, data)
    assert info["others"] == [], info  # no process of an earlier job
    assert info["files"] == [], info  # nothing left in any writable place
    assert info["ipc"] == {"shm": [], "sem": [], "msg": []}, info
    assert min(info["free_mb"].values()) >= LIMITS.scratch_mb - 2, info  # every tmpfs empty again
    for name in HONEST:
        result = evaluate(pool, data, source(name))
        assert result["status"] == "ok", (name, result["kind"], result["message"])
        assert abs(100 * result["val_accuracy"] - 100 * fresh[name]) <= 0.5, (name, result)


@pytest.mark.parametrize("attack", ATTACKS)
def test_honest_jobs_after_an_attack_score_as_in_a_fresh_container(
    pool: WarmDockerBackend, mnist: PreparedDataset, fresh_scores: dict[str, float], attack: str
) -> None:
    evaluate(pool, mnist, source(attack))  # whatever the attacker's own result
    # it attacked the next ones: they run as if it had never been there
    assert_honest_jobs_unharmed(pool, mnist, fresh_scores)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP", "SIGTERM"])
def test_a_survivor_is_gone_before_the_next_job_starts(
    pool: WarmDockerBackend, mnist: PreparedDataset, signal_name: str
) -> None:
    """Whatever the survivor does to other processes of its uid (kill them the moment they
    appear, stop them, or ask them to end), nothing of its job runs once its result is back."""
    assert evaluate(pool, mnist, source("small_cnn"))["status"] == "ok"
    assert pool._pool is not None
    uid_base = pool._pool.uid_base
    attack = source("warm_outlive_reaper").replace("signal.SIGKILL", f"signal.{signal_name}")
    result = evaluate(pool, mnist, attack)
    assert result["status"] == "ok", result  # the attacker trained; its survivor waited for that
    assert pool_processes(uid_base) == []  # before any next job has started
    assert probe(pool, mnist)["others"] == []


def test_a_setup_failure_is_never_the_candidates_result(
    pool: WarmDockerBackend, mnist: PreparedDataset
) -> None:
    """A job the worker cannot set up raises InfrastructureFault; nothing is charged."""
    from sandbox.faults import InfrastructureFault

    assert evaluate(pool, mnist, source("small_cnn"))["status"] == "ok"
    broken = WarmDockerBackend(image=pool.image)
    broken.prove_clean = True
    try:
        # a job uid the worker cannot take: setgid/setuid to -1 fails before any candidate code
        original = broken._pool_for

        def pool_with_bad_uids(job: Any) -> Any:
            chosen = original(job)
            chosen.uid_base = -5000
            return chosen

        broken._pool_for = pool_with_bad_uids  # type: ignore[method-assign]
        with pytest.raises(InfrastructureFault, match="could not set up a job"):
            evaluate(broken, mnist, source("small_cnn"))
        assert broken.retired == 2  # the first container, then the fresh one it retried in
    finally:
        broken.close()


def test_a_container_that_cannot_prove_it_is_clean_is_retired(
    sandbox_image: str, mnist: PreparedDataset, caplog: pytest.LogCaptureFixture
) -> None:
    """Something the clearing cannot remove (here a file of a uid that no job had, put there
    from outside) fails the proof: the container is retired, said in the log, and the next job
    runs in a fresh one."""
    backend = WarmDockerBackend(image=sandbox_image)
    try:
        assert evaluate(backend, mnist, source("small_cnn"))["status"] == "ok"
        assert backend._pool is not None
        container = backend._pool.container
        python = container.attrs["Config"]["Cmd"][0]
        plant = "open('/dev/shm/planted', 'w').write('x')"
        assert container.exec_run([python, "-c", plant], user="4242:4242").exit_code == 0
        result = evaluate(backend, mnist, source("small_cnn"))
        assert result["status"] == "ok", result  # it started clean: its result stands
        assert backend.retired == 1 and backend._pool is None
        assert "retiring container" in caplog.text and "/dev/shm still holds" in caplog.text
        assert evaluate(backend, mnist, source("small_cnn"))["status"] == "ok"
        assert backend.started == 2
    finally:
        backend.close()
