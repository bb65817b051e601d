"""Crash trials: `python -m agent.run` SIGKILLed at random moments, resumed each time.

Kills land wherever the run happens to be: starting up, inside an LLM call, in a training, in an
archive or checkpoint write. At the end the archive and the checkpoint must agree, the iteration
count must be exact, and no candidate may be lost, duplicated or trained twice.

CI runs a reduced count; the full trial is the same test with more kills:

    NASLOOP_TEST_CRASH_TRIALS=20 python -m pytest tests/integration/test_crash_trials.py
"""

from __future__ import annotations

import collections
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest

from agent.archive.candidates import RunArchive
from tests.helpers.agent_cli import agent_run, fake_model_env
from tests.helpers.runs import checkpoint_state, wait_and_kill
from tests.helpers.sandbox_jobs import PRECHECKED

pytestmark = pytest.mark.docker
TRIALS = int(os.environ.get("NASLOOP_TEST_CRASH_TRIALS", "6"))
# Each life of the run makes at most 3-4 candidates of progress before its kill (wait_and_kill
# waits for 0-2 progress lines, then up to 1.5 s, and the paced LLM makes an iteration last 1 s):
# enough iterations that every kill lands mid-run (the test fails, rather than passing weakly,
# when the run ends before the last kill).
ITERATIONS = 12 + 4 * TRIALS


def test_random_sigkills_lose_nothing(
    tmp_path: Path, paced_llm_url: str, sandbox_image: str
) -> None:
    env = fake_model_env(
        tmp_path,
        paced_llm_url,  # >= 1 s per iteration (see wait_and_kill)
        NASLOOP_TRAIN_LIMIT="300",
    )
    args = ("--run-id", "crash", "--iterations", str(ITERATIONS), "--json")
    rng = random.Random(os.environ.get("NASLOOP_TEST_CRASH_SEED", "7"))
    kills = 0
    while kills < TRIALS:
        proc = agent_run(env, *args)
        if not wait_and_kill(proc, rng):  # finished before the kill: the run is complete
            break
        kills += 1
    final = agent_run(env, *args)
    out, err = final.communicate(timeout=900)
    assert final.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["iterations"] == ITERATIONS
    print(f"crash trials: {kills} SIGKILLs over {ITERATIONS} iterations")
    assert kills == TRIALS, f"the run finished after {kills} kills: raise ITERATIONS"

    run_dir = tmp_path / "runs" / "crash"
    rows = RunArchive(run_dir).rows()
    assert [r["iteration"] for r in rows] == list(range(ITERATIONS))  # none lost or duplicated
    trained = collections.Counter(
        r["code_hash"] for r in rows if not r["cached"] and r["kind"] not in PRECHECKED
    )
    assert max(trained.values(), default=0) <= 1, trained  # never trained twice
    with sqlite3.connect(tmp_path / "runs" / "eval_cache.sqlite") as cache:
        cached_hashes = {h for (h,) in cache.execute("SELECT code_hash FROM results")}
    # every sandboxed candidate's result is in the cache, so a later resume can never retrain it
    assert {r["code_hash"] for r in rows if r["kind"] not in PRECHECKED} <= cached_hashes

    # the checkpoint and the archive tell the same story
    state = checkpoint_state(run_dir)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    assert state["iteration"] == ITERATIONS
    assert state["ok_count"] == len(ok_rows)
    best = max(ok_rows, key=lambda r: r["val_accuracy"])
    assert state["best"]["result"]["val_accuracy"] == best["val_accuracy"]
    assert state["last"]["iteration"] == ITERATIONS - 1
    for triple in state["window"]:
        row = rows[triple["iteration"]]
        assert json.loads(row["closed_triple"]) == triple
