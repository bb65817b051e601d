"""Edit blocks end to end: `python -m agent.run --edit-mode diff|auto` as a user runs it, against a
real HTTP OpenAI-compatible server (tests/fakes/openai_server.py) replaying
tests/fakes/edit_replies.py, a small model that half follows the format, with the process sandbox
(Docker is slow on this machine, and the edits are read on the host either way).

The Generator's script, one reply per iteration (each prompt's "best network" is the best so far):

    0  a whole module, the first ask (no code shown yet)         -> trained
    1  two fenced CRLF blocks, trailing spaces, an example tail  -> applied, trained
    2  a block whose SEARCH paraphrases a line                   -> bad_edit
    3  a block whose SEARCH occurs twice                         -> bad_edit
    4  a whole module, ignoring the format           -> diff: bad_edit; auto: trained

Run with `--edit-mode full` (the mechanism off), reply 1 gives no code at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.archive.calls import CallLog
from agent.archive.candidates import RunArchive
from tests.fakes.edit_replies import EDITED, SCRIPT
from tests.helpers.agent_cli import agent_run, fake_model_env, llm_server


def search(tmp_path: Path, mode: str, iterations: int) -> tuple[RunArchive, CallLog]:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(SCRIPT))
    with llm_server(replies) as url:
        env = fake_model_env(
            tmp_path,
            url,
            NASLOOP_SANDBOX="process",
            NASLOOP_PROMPT_STYLE="short",
            NASLOOP_TRAIN_LIMIT="300",
        )
        run = agent_run(env, "--run-id", mode, "--iterations", str(iterations), "--edit-mode", mode)
        _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    run_dir = tmp_path / "runs" / mode
    return RunArchive(run_dir), CallLog(run_dir)


def generator_calls(calls: CallLog) -> dict[int, Any]:
    return {c["iteration"]: c for c in calls.calls() if c["role"] == "generator"}


def test_diff_mode_applies_the_blocks_and_fails_the_bad_ones_clearly(tmp_path: Path) -> None:
    archive, calls = search(tmp_path, "diff", 5)
    rows = archive.rows()
    assert [r["kind"] for r in rows] == ["ok", "ok", "bad_edit", "bad_edit", "bad_edit"], rows
    attempts = {a["iteration"]: a for a in archive.attempts()}
    # iteration 1: the blocks applied to the first module, trained, archived with the diff
    assert attempts[1]["code"] == EDITED and attempts[1]["source"] == "generator"
    assert attempts[1]["diff"].startswith("--- a/candidate.py\n+++ b/candidate.py\n")
    assert "+            nn.BatchNorm2d(16),\n" in attempts[1]["diff"]
    assert "model = Net()" not in attempts[1]["code"]
    messages = [r["message"] for r in rows]
    assert messages[2].startswith(
        "edit block 1: its SEARCH text is not in the code shown (first line: "
        "'self.features = nn.Sequential('); its line 2 'nn.Conv2d(in_channels=1,"
    )
    assert messages[3].startswith(
        "edit block 1: its SEARCH text occurs 2 times in the code shown (first line: 'nn.ReLU(),')"
    )
    assert messages[4].startswith("the reply holds no edit blocks")
    assert all(attempts[n]["code"] is None and attempts[n]["stage"] == "none" for n in (2, 3, 4))
    # the calls table keeps each raw reply and what was read from it
    asked = generator_calls(calls)
    assert "<<<<<<< SEARCH" not in asked[0]["messages"][-1]["content"]  # nothing to edit yet
    assert "<<<<<<< SEARCH" in asked[1]["messages"][-1]["content"]
    assert "nn.Conv2d(1, 16, 3, padding=1)," in asked[1]["messages"][-1]["content"]
    assert ">>>>>>> REPLACE" in asked[1]["reply"] and asked[1]["extracted"] == {"code": EDITED}
    assert asked[2]["extracted"] == {"none": messages[2]}
    # the Improver and the memory see a bad edit like any failure
    improver = {c["iteration"]: c for c in calls.calls() if c["role"] == "improver"}
    assert "bad_edit" in improver[2]["messages"][-1]["content"]
    assert "edit block 1: its SEARCH text is not in" in improver[2]["messages"][-1]["content"]
    closed = json.loads(rows[3]["closed_triple"])
    assert closed["outcome"].startswith("failed (bad_edit): edit block 1")


def test_auto_mode_also_takes_the_whole_module(tmp_path: Path) -> None:
    archive, _ = search(tmp_path, "auto", 5)
    assert [r["kind"] for r in archive.rows()] == ["ok", "ok", "bad_edit", "bad_edit", "ok"]
    last = next(a for a in archive.attempts() if a["iteration"] == 4)
    assert "nn.Conv2d(1, 24, 3, padding=1)" in last["code"]


def test_without_edits_the_same_reply_gives_no_code(tmp_path: Path) -> None:
    archive, _ = search(tmp_path, "full", 2)
    assert [r["kind"] for r in archive.rows()] == ["ok", "no_code"]
