"""Seeing what the search saw and said (issue 16), through `python -m agent.run` as a user runs it.

Against the scripted OpenAI-compatible server (tests/fakes/openai_server.py, the mnist5k replies)
and the real Docker sandbox:
- every LLM call of every role archived with its messages, reply, model and what was read from it;
  `python -m agent show` prints an iteration's story and its JSON, and refuses unknowns in one line;
- the report's lineage graph has one node per archived candidate, its edges are the recorded
  parents, the PNG exists, and "why candidates failed" counts what the archive holds;
- SIGKILLs at random moments, then resume: every archived candidate has its Generator call (the
  very code it trained), and every archived call belongs to an archived candidate or to an
  iteration that the resume then completes;
- a parallel run's plain progress lines come in iteration order, each with its worker.
The live view in a real terminal is tests/integration/test_live_view.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.archive.calls import CallLog
from agent.archive.candidates import CALL_SOURCES, RunArchive
from agent.archive.lineage import read_parents
from agent.prompts import SUGGESTION_CHARS
from tests.fakes import MNIST5K_REPLIES
from tests.helpers.agent_cli import (
    agent_run,
    fake_model_env,
    llm_server,
    persona_server,
)
from tests.helpers.paths import ROOT
from tests.helpers.runs import checkpoint_state, wait_and_kill

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group(__name__)]
ITERATIONS = 11  # one pass over the scripted Generator replies
SCRIPT = json.loads(MNIST5K_REPLIES.read_text())
ASKED = ("generator", *CALL_SOURCES)  # attempts whose program came from a Generator call
KILLS = int(os.environ.get("NASLOOP_TEST_OBSERVE_KILLS", "3"))  # test_crash_trials kills 6 times


def show(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "show", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Any]:
    """One whole run of ITERATIONS candidates (report included); its env and run dir."""
    tmp_path = tmp_path_factory.mktemp("observed")
    with llm_server(MNIST5K_REPLIES) as url:
        env = fake_model_env(
            tmp_path,
            url,
            NASLOOP_TRAIN_LIMIT="300",
        )
        run = agent_run(env, "--run-id", "obs", "--iterations", str(ITERATIONS), "--json")
        out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["iterations"] == ITERATIONS and summary["report_dir"]
    yield env, tmp_path / "runs" / "obs"


def test_every_call_of_every_role_is_archived(observed: Any) -> None:
    _, run_dir = observed
    rows = RunArchive(run_dir).rows()
    calls = CallLog(run_dir).calls()
    by_role = {role: [c for c in calls if c["role"] == role] for role in ("generator", "improver")}
    assert [c["iteration"] for c in by_role["generator"]] == list(range(ITERATIONS))
    assert [c["iteration"] for c in by_role["improver"]] == list(range(ITERATIONS - 1))
    for call in calls:
        assert call["attempt"] == 0  # today's flow: one program per iteration
        assert [m["role"] for m in call["messages"]] == ["system", "human"]
        assert all(m["content"].strip() for m in call["messages"])
        assert call["model"] == f"fake-{call['role']}"  # the id the server answered with
        assert call["tokens"] > 0 and call["seconds"] >= 0 and call["finish_reason"] == "stop"
    for row, call in zip(rows, by_role["generator"], strict=True):
        assert call["reply"] == SCRIPT["fake-generator"][row["iteration"]]  # the raw reply
        if row["code_path"]:  # what was read from it is exactly what was trained
            assert call["extracted"]["code"] == (run_dir / row["code_path"]).read_text()
        else:
            assert row["kind"] == "no_code"
            assert call["extracted"] == {"none": "the reply contained no Python code block"}
    for call in by_role["improver"]:
        assert call["reply"] == SCRIPT["fake-improver"][call["iteration"]]
        advice = rows[call["iteration"]]["next_suggestion"]  # what entered the memory
        assert advice == call["extracted"]["suggestion"][:SUGGESTION_CHARS]
    # the prompt each Generator call was sent shows the previous candidate's outcome
    assert "shape" in by_role["generator"][2]["messages"][1]["content"]


def test_show_prints_an_iteration_its_json_and_refuses_unknowns(observed: Any) -> None:
    env, _ = observed
    done = show(env, "obs", "1")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("# Run obs · iteration 1 · shape")
    assert "derived from: iteration 0 (best)" in text
    for heading in ("## Generator call (attempt 0) · model fake-generator", "### Prompt"):
        assert heading in text
    assert SCRIPT["fake-generator"][1].strip().splitlines()[0] in text  # the reply
    assert "## Improver call (attempt 0) · model fake-improver" in text
    assert "## Triple it closed" in text and "## Advice it produced" in text
    as_json = show(env, "obs", "1", "--json")
    data = json.loads(as_json.stdout)
    assert [c["role"] for c in data["calls"]] == ["generator", "improver"]
    assert data["result"]["kind"] == "shape" and data["code"] and data["advice"]["suggestion"]
    table = show(env, "obs").stdout.splitlines()
    assert len(table) == ITERATIONS + 1 and table[2].split()[:2] == ["1", "shape"]
    for args in (("obs", "99"), ("missing-run",)):
        refused = show(env, *args)
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("nasloop: error:")


def test_report_lineage_and_failures_follow_the_archive(observed: Any) -> None:
    _, run_dir = observed
    report = run_dir / "report"
    summary = json.loads((report / "summary.json").read_text())
    rows = RunArchive(run_dir).rows()
    parents = read_parents(run_dir)
    assert sorted(parents) == [r["iteration"] for r in rows]
    graph = summary["lineage"]
    assert [n["iteration"] for n in graph["nodes"]] == [r["iteration"] for r in rows]
    recorded = sorted([p["parent"], i] for i, p in parents.items() if p["parent"] is not None)
    assert graph["edges"] == recorded and len(recorded) == len(rows) - 1  # one root
    assert graph["best_path"][-1] == summary["best_iteration"]
    assert (report / "lineage.png").stat().st_size > 5000
    with sqlite3.connect(run_dir / "archive.sqlite") as db:
        counts = dict(
            db.execute("SELECT kind, count(*) FROM candidates WHERE status != 'ok' GROUP BY kind")
        )
    why = summary["why_failed"]
    assert {k: v["count"] for k, v in why["kinds"].items()} == counts
    assert {"shape", "syntax", "no_code", "no_net"} <= set(counts)
    assert why["kinds"]["shape"]["example"]["line"] == "x = F.relu(self.fc1(x))"
    assert why["duplicates"] == [{"iteration": 6, "same_as": 0}]  # the comment-only repeat
    markdown = (report / "report.md").read_text()
    assert "### Why candidates failed" in markdown and "lineage.png" in markdown


def test_sigkills_then_resume_leave_no_call_without_its_candidate(
    tmp_path: Path, paced_llm_url: str, sandbox_image: str
) -> None:
    iterations = 4 * KILLS + 4  # each life makes at most 3-4 candidates (see wait_and_kill)
    env = fake_model_env(
        tmp_path,
        paced_llm_url,
        NASLOOP_TRAIN_LIMIT="300",
    )
    args = ("--run-id", "killed", "--iterations", str(iterations), "--json")
    run_dir = tmp_path / "runs" / "killed"
    rng = random.Random(os.environ.get("NASLOOP_TEST_CRASH_SEED", "16"))
    orphans: set[int] = set()  # calls of iterations not archived at a kill
    for _ in range(KILLS):
        assert wait_and_kill(agent_run(env, *args), rng), "the run ended before its kill"
        if not (run_dir / "archive.sqlite").is_file():
            continue  # killed before its first write
        archived = {r["iteration"]: r for r in RunArchive(run_dir).rows()}
        calls = CallLog(run_dir).calls()
        generated = {c["iteration"] for c in calls if c["role"] == "generator"}
        assert set(archived) <= generated  # every archived candidate has its Generator call
        state = checkpoint_state(run_dir) if (run_dir / "checkpoints.sqlite").is_file() else {}
        next_iteration = state.get("iteration", 0)
        for call in calls:
            if call["iteration"] not in archived:
                # only the iteration in flight: the checkpoint's next one
                assert call["iteration"] == next_iteration, (call["iteration"], next_iteration)
                orphans.add(call["iteration"])
    final = agent_run(env, *args)
    out, err = final.communicate(timeout=900)
    assert final.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["iterations"] == iterations
    rows = RunArchive(run_dir).rows()
    archived = {r["iteration"]: r for r in rows}
    assert sorted(archived) == list(range(iterations))
    calls = CallLog(run_dir).calls()
    assert orphans <= set(archived)  # the resume completed every iteration a kill left open
    assert {c["iteration"] for c in calls} <= set(archived)
    generator = {c["iteration"]: c for c in calls if c["role"] == "generator"}
    assert sorted(generator) == list(range(iterations))
    keys = Counter((c["iteration"], c["attempt"], c["role"]) for c in calls)
    assert max(keys.values()) == 1  # a call made again after a kill replaced its row
    for it, row in archived.items():  # the call archived is the one whose code was trained
        code = (run_dir / row["code_path"]).read_text() if row["code_path"] else None
        assert generator[it]["extracted"].get("code") == code, it
    print(f"observe crash trials: {KILLS} SIGKILLs, {len(orphans)} calls completed on resume")


def test_sigkills_amid_re_asks_and_fixes_leave_every_call_with_its_attempt(
    tmp_path: Path, sandbox_image: str
) -> None:
    """The same kill trials with the check step on, against the server that repeats its
    mistakes (paced, so that every kill lands mid-run): re-asks and fixes happen between kills,
    and every archived candidate still has its Generator calls, one per asked attempt."""
    iterations = 4 * KILLS + 4
    with persona_server("mistakes", "--reply-delay", "0.5") as url:
        env = fake_model_env(
            tmp_path,
            url,
            NASLOOP_PROMPT_STYLE="short",
            NASLOOP_NOVELTY="true",
            NASLOOP_AUTO_FIX="true",
            NASLOOP_TRAIN_LIMIT="300",
        )
        args = ("--run-id", "killed", "--iterations", str(iterations), "--json")
        run_dir = tmp_path / "runs" / "killed"
        rng = random.Random(os.environ.get("NASLOOP_TEST_CRASH_SEED", "16"))
        for _ in range(KILLS):
            assert wait_and_kill(agent_run(env, *args), rng), "the run ended before its kill"
            if not (run_dir / "archive.sqlite").is_file():
                continue  # killed before its first write
            archived = {r["iteration"] for r in RunArchive(run_dir).rows()}
            calls = CallLog(run_dir).calls()
            assert archived <= {c["iteration"] for c in calls if c["role"] == "generator"}
            state = checkpoint_state(run_dir) if (run_dir / "checkpoints.sqlite").is_file() else {}
            stray = {c["iteration"] for c in calls} - archived
            assert stray <= {state.get("iteration", 0)}  # only the iteration in flight
        final = agent_run(env, *args)
        out, err = final.communicate(timeout=900)
    assert final.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["iterations"] == iterations
    archive = RunArchive(run_dir)
    rows, attempts, calls = archive.rows(), archive.attempts(), CallLog(run_dir).calls()
    assert sorted(r["iteration"] for r in rows) == list(range(iterations))
    keys = Counter((c["iteration"], c["attempt"], c["role"]) for c in calls)
    assert max(keys.values()) == 1  # a call made again after a kill replaced its row
    asked = {(a["iteration"], a["attempt"]): a for a in attempts if a["source"] in ASKED}
    generator = {(c["iteration"], c["attempt"]): c for c in calls if c["role"] == "generator"}
    assert set(generator) == set(asked)  # one call per asked attempt, kills notwithstanding
    assert any(n > 0 for _, n in asked), "no re-ask happened"
    assert any(a["source"].startswith("fix:") and a["diff"] for a in attempts), "no fix happened"
    for key, call in generator.items():
        assert call["extracted"].get("code") == asked[key]["code"], key
    for row in rows:  # what was trained is one of its iteration's archived attempts
        code = (run_dir / row["code_path"]).read_text() if row["code_path"] else None
        tried = {a["code"] for a in attempts if a["iteration"] == row["iteration"]}
        assert code is None or code in tried, row["iteration"]


def test_parallel_plain_lines_in_iteration_order_with_their_worker(
    tmp_path: Path, llm_url: str, sandbox_image: str
) -> None:
    env = fake_model_env(
        tmp_path,
        llm_url,
        NASLOOP_TRAIN_LIMIT="300",
    )
    run = agent_run(env, "--run-id", "par", "--iterations", "6", "--parallel", "3")
    _, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    found = [re.match(r"\[(\d+)/6\] w(\d) best ", line) for line in lines]
    assert all(found), lines
    assert [int(m.group(1)) for m in found if m] == [1, 2, 3, 4, 5, 6]
    assert [int(m.group(2)) for m in found if m] == [1, 2, 3, 1, 2, 3]


def test_re_asks_and_fixes_of_the_mistakes_persona_are_all_archived(
    tmp_path: Path, sandbox_image: str
) -> None:
    """The scripted server that repeats its mistakes (tests/fakes/mistakes.py), with the check
    step on: every ask of every attempt is a call with its messages and reply, every mechanical
    fix an attempt with its diff, and `python -m agent show` prints them."""
    with persona_server("mistakes") as url:
        env = fake_model_env(
            tmp_path,
            url,
            NASLOOP_PROMPT_STYLE="short",
            NASLOOP_TRAIN_LIMIT="300",
        )
        run = agent_run(env, "--run-id", "m", "--iterations", "6", "--novelty", "--auto-fix")
        _, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    run_dir = tmp_path / "runs" / "m"
    rows = RunArchive(run_dir).rows()
    attempts = RunArchive(run_dir).attempts()
    calls = CallLog(run_dir).calls()
    asked = {(a["iteration"], a["attempt"]) for a in attempts if a["source"] in ASKED}
    generator = {(c["iteration"], c["attempt"]): c for c in calls if c["role"] == "generator"}
    assert set(generator) == asked  # one archived call per program the Generator wrote
    assert any(attempt > 0 for _, attempt in generator)  # re-asks happened, and are there
    for call in calls:
        assert call["messages"] and call["reply"].strip() and call["model"]
    for (it, n), call in generator.items():
        if n > 0:  # a re-ask: the same prompt plus the note about the repeat
            assert call["messages"][-1]["content"] != generator[(it, 0)]["messages"][-1]["content"]
        code = call["extracted"].get("code")
        attempt = next(a for a in attempts if (a["iteration"], a["attempt"]) == (it, n))
        assert code == attempt["code"]  # what was read is the attempt's program
    improver = sorted(c["iteration"] for c in calls if c["role"] == "improver")
    assert improver == [r["iteration"] for r in rows][:-1]
    fixes = [a for a in attempts if a["source"].startswith("fix:")]
    assert fixes and all(a["diff"].startswith("---") or "@@" in a["diff"] for a in fixes)
    assert not any((a["iteration"], a["attempt"]) in generator for a in fixes)  # no call: a diff
    it = fixes[0]["iteration"]
    text = show(env, "m", str(it)).stdout
    assert fixes[0]["diff"].strip().splitlines()[-1] in text and "### Diff" in text
    data = json.loads(show(env, "m", str(it), "--json").stdout)
    assert {a["source"] for a in data["attempts"]} >= {fixes[0]["source"]}
    assert [c["attempt"] for c in data["calls"] if c["role"] == "generator"] == sorted(
        n for i, n in generator if i == it
    )
