"""Issue 14's Done-when: the search stops repeating itself and fixes its cheap errors.

`python -m agent.run` as a user runs it, against the "mistakes" persona (tests/fakes/mistakes.py:
an OpenAI-compatible HTTP server that errs as a real 0.5B model did: `sqrt` without its import, a
wrong flattened size, each module returned again on the next two asks whatever the request says,
window lines copied into the Improver's `problem`), with the real Docker sandbox. Run once with the
check step on (the default) and once with `--no-auto-fix --no-novelty`: the second reproduces the
stuck loop, so the first proves that the mechanisms are what fix it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from tests.helpers.agent_cli import agent_run, fake_model_env, persona_server

pytestmark = pytest.mark.docker
ITERATIONS = 6
ECHOES = (" -> suggestion: ", " -> outcome: ")


def search(tmp_path: Path, *flags: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the search to its end; the archive's candidates and attempts."""
    with persona_server("mistakes") as url:
        env = fake_model_env(
            tmp_path,
            url,
            NASLOOP_PROMPT_STYLE="short",
            NASLOOP_TRAIN_LIMIT="300",  # each run trains up to 6 candidates: keep them quick
        )
        run = agent_run(env, "--run-id", "m", "--iterations", str(ITERATIONS), "--json", *flags)
        out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["iterations"] == ITERATIONS
    archive = RunArchive(tmp_path / "runs" / "m")
    return archive.rows(), archive.attempts()


def trained_hashes(attempts: list[dict[str, Any]]) -> list[str]:
    return [a["code_hash"] for a in attempts if a["stage"] == "train"]


def test_the_check_step_turns_the_stuck_loop_into_trained_candidates(
    tmp_path: Path, sandbox_image: str
) -> None:
    rows, attempts = search(tmp_path / "on", "--novelty", "--auto-fix")
    kinds = [r["kind"] for r in rows]
    assert "ok" in kinds[:3], kinds  # a candidate trains within the first 3 iterations
    # iteration 0: the sqrt module, fixed on the host (an import), trained in the same iteration
    first = [a for a in attempts if a["iteration"] == 0]
    assert [a["source"] for a in first] == ["generator", "fix:imports"], first
    assert "+from math import sqrt" in first[1]["diff"] or "+import math" in first[1]["diff"]
    assert kinds[0] == "ok"
    # the repeats were asked again, then the wrong flattened size was fixed from the shape trace
    assert any(a["source"] == "reask" for a in attempts)
    assert any(a["source"] == "fix:in_features" for a in attempts), attempts
    # no program is trained twice, and nothing comes from the cache
    trained = trained_hashes(attempts)
    assert len(trained) == len(set(trained)) >= 3, trained
    assert not any(r["cached"] for r in rows)
    # a duplicate is never counted as trained
    for row in rows:
        if row["kind"] == "duplicate":
            assert row["status"] == "error" and row["val_accuracy"] is None
    assert not any(a["kind"] == "duplicate" and a["stage"] == "train" for a in attempts)
    ok = sum(r["status"] == "ok" for r in rows)
    assert ok == len([r for r in rows if r["kind"] == "ok"]) >= 3
    # the memory holds no echoed window lines
    for row in rows:
        texts = [row["next_problem"] or "", row["next_suggestion"] or ""]
        if row["closed_triple"]:
            triple = json.loads(row["closed_triple"])
            texts += [triple["problem"], triple["suggestion"]]
        for text in texts:
            assert not any(echo in text for echo in ECHOES), text


def test_without_the_check_step_the_same_server_is_stuck(
    tmp_path: Path, sandbox_image: str
) -> None:
    rows, attempts = search(tmp_path / "off", "--no-novelty", "--no-auto-fix")
    assert [r["status"] for r in rows] == ["error"] * ITERATIONS  # nothing trains
    hashes = [r["code_hash"] for r in rows]
    assert len(set(hashes)) == 2  # the same two programs, three times each
    assert sum(r["cached"] for r in rows) == 4  # repeats served from the cache
    assert [a["source"] for a in attempts] == ["generator"] * ITERATIONS
