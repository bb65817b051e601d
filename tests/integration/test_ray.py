"""`python -m agent.run --parallel 2 --executor ray://...` on a real local Ray cluster.

The cluster (tests/helpers/ray_cluster.py) is a head and one worker node on 127.0.0.1, one
CPU each, reached through Ray's client server as a remote cluster would be. The LLM is the test's
own OpenAI-compatible HTTP server; candidates train in the Docker sandbox on the Ray workers.
Asserted: evaluations ran on the cluster's nodes, every candidate and triple is archived in a
defined order, a SIGKILLed search resumes exactly, and a Ray worker killed in the middle of an
evaluation loses nothing (the candidate is run again, or recorded as failed when no retry is
left).
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from sandbox.ray_executor import TASK_NAME
from tests.helpers.agent_cli import agent_run, fake_model_env, llm_server
from tests.helpers.ray_cluster import RayCluster
from tests.helpers.runs import checkpoint_state
from tests.helpers.sandbox_jobs import MACHINE_WIDE, PRECHECKED

pytestmark = [pytest.mark.docker, MACHINE_WIDE]  # never beside a fork bomb (see there)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        import docker

        from sandbox.backends.docker import reap_orphans

        client = docker.from_env()
        reap_orphans(client)  # a container whose Ray worker was killed mid-job, if any is left
        client.close()


def ray_env(tmp_path: Path, llm_url: str, cluster: RayCluster, **extra: str) -> dict[str, str]:
    return fake_model_env(
        tmp_path,
        llm_url,
        NASLOOP_TRAIN_LIMIT="600",
        NASLOOP_FINAL_TOP_K="0",  # the end-of-run final test trains locally: not what this tests
        **cluster.client_env(),
        **extra,
    )


def test_parallel_search_on_ray_archives_everything_and_resumes(
    tmp_path: Path, llm_url: str, sandbox_image: str, ray_cluster: RayCluster
) -> None:
    env = ray_env(tmp_path, llm_url, ray_cluster)
    n = 8  # four rounds of two
    args = ["--run-id", "ray1", "--iterations", str(n), "--parallel", "2", "--json"]
    args += ["--executor", ray_cluster.address]
    first = agent_run(env, *args)
    assert first.stderr is not None
    seen = []
    for line in first.stderr:  # progress lines "[i/8] ..." come as each branch finishes
        seen.append(line)
        if sum(1 for s in seen if re.match(rf"\[\d+/{n}\]", s)) >= 3:
            break
    time.sleep(random.uniform(0.0, 2.0))  # somewhere in the next round
    first.send_signal(signal.SIGKILL)
    first.wait()
    archive = RunArchive(tmp_path / "runs" / "ray1")
    assert 3 <= len(archive.rows()) < n, "".join(seen)

    second = agent_run(env, *args)
    out, err = second.communicate(timeout=900)
    assert second.returncode == 0, err
    assert "resuming run ray1" in err and "Traceback" not in err
    assert json.loads(out)["iterations"] == n

    rows = archive.rows()
    assert [r["iteration"] for r in rows] == list(range(n))  # none lost, none duplicated
    # every sandboxed evaluation ran as a Ray task on one of this cluster's nodes
    nodes = ray_cluster.node_ids()
    sandboxed = [json.loads(r["result"]) for r in rows if r["kind"] not in PRECHECKED]
    fresh = [r for r in sandboxed if not r["cached"]]
    assert fresh, [r["kind"] for r in rows]
    for result in sandboxed:
        assert result["executor"] == "ray", result
    for result in fresh:
        assert result["ray"]["node_id"] in nodes and result["ray"]["pid"] > 0, result
    trained = collections.Counter(
        r["code_hash"] for r in rows if not r["cached"] and r["kind"] not in PRECHECKED
    )
    assert max(trained.values()) == 1, trained  # no identical candidate trained twice

    # triples: each candidate of round k closes the advice given after round k-1
    assert [r["closed_triple"] for r in rows[:2]] == [None, None]
    for row in rows[2:]:
        triple = json.loads(row["closed_triple"])
        before = rows[row["iteration"] // 2 * 2 - 1]  # the previous round's last candidate
        assert triple["iteration"] == row["iteration"]
        assert triple["suggestion"] == before["next_suggestion"], (row, before)
    # ... and the checkpoint tells the same story as the archive
    state = checkpoint_state(tmp_path / "runs" / "ray1")
    assert state["iteration"] == n and state["round"] == []
    for triple in state["window"]:
        assert json.loads(rows[triple["iteration"]]["closed_triple"]) == triple
    assert state["ok_count"] == sum(1 for r in rows if r["status"] == "ok")


SLOW_NET = """Here is a small network.

```python
import time

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        time.sleep(4)  # slow on purpose: the test kills the Ray worker meanwhile
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(784, {width}), nn.ReLU(), nn.Linear({width}, num_classes)
        )

    def forward(self, x):
        return self.body(x)
```
"""


@pytest.fixture
def slow_llm_url(tmp_path: Path) -> Iterator[str]:
    """The test's LLM server, replying with slow nets of different widths."""
    replies = tmp_path / "slow.json"
    advice = json.dumps({"problem": "it is slow", "suggestion": "remove the sleep"})
    generator = [SLOW_NET.replace("{width}", str(w)) for w in (32, 48, 64, 80)]
    replies.write_text(json.dumps({"fake-generator": generator, "fake-improver": [advice]}))
    with llm_server(replies) as url:
        yield url


@pytest.mark.parametrize("retries", [2, 0])
def test_a_ray_worker_killed_mid_evaluation_loses_nothing(
    tmp_path: Path, slow_llm_url: str, sandbox_image: str, ray_cluster: RayCluster, retries: int
) -> None:
    env = ray_env(tmp_path, slow_llm_url, ray_cluster, NASLOOP_RAY_RETRIES=str(retries))
    args = ("--run-id", "kill", "--iterations", "2", "--parallel", "2", "--json")
    run = agent_run(env, *args, "--executor", ray_cluster.address)
    # wait until the round's two evaluations run at once, one on each node
    busy: dict[int, str] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        busy = ray_cluster.busy_workers(TASK_NAME)
        if sorted(busy.values()) == ["head", "worker"]:
            break
        time.sleep(0.2)
    assert sorted(busy.values()) == ["head", "worker"], f"not both nodes at once: {busy}"
    victim = next(pid for pid, node in busy.items() if node == "worker")
    time.sleep(1.5)  # well inside the evaluation (the net alone sleeps 4 s)
    os.kill(victim, signal.SIGKILL)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert json.loads(out)["iterations"] == 2

    rows = RunArchive(tmp_path / "runs" / "kill").rows()
    assert [r["iteration"] for r in rows] == [0, 1]  # both candidates archived
    results: list[dict[str, Any]] = [json.loads(r["result"]) for r in rows]
    assert all(r.get("ray", {}).get("pid") != victim for r in results)  # it never answered
    if retries:  # Ray ran the killed evaluation again on a fresh worker
        assert [r["kind"] for r in results] == ["ok", "ok"], results
    else:  # no retry left: recorded as a failed candidate, and the search went on
        assert sorted(r["kind"] for r in results) == ["killed", "ok"], results
        lost = next(r for r in results if r["kind"] == "killed")
        assert lost["lost"] is True and "lost its Ray worker" in lost["message"]
        # not cached: the code is not to blame, a later run may train it
        import sqlite3

        with sqlite3.connect(tmp_path / "runs" / "eval_cache.sqlite") as cache:
            hashes = {h for (h,) in cache.execute("SELECT code_hash FROM results")}
        assert lost["code_hash"] not in hashes
