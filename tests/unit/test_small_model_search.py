"""The whole search loop against a model that behaves like the small ones we measured
(tests/fakes/small_model.py): it copies the network it is shown, repeats its advice and now and
then echoes its prompt. The compiled graph, the check step, the archive and the memory are the
real ones; the evaluator reads the result each module names (tests/helpers/graph.py).

What must hold however the model behaves: no program is trained twice, a copy of the best costs
re-asks and never a training, repeated advice fills one line of the memory with its count, an
echoed prompt is recorded as unreadable advice or as a reply without code, and the best is the
best of what was trained.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.graph import build_graph
from agent.replies.advice_cleaning import UNREADABLE
from agent.settings import Settings
from sandbox.code import code_hash
from sandbox.result import EvalResult, new_result
from tests.fakes.small_model import GENERATOR, IMPROVER, ResponderChat, SmallModel
from tests.helpers.graph import ScriptedEvaluator, generator_reply, improver_reply, use_evaluator

ITERATIONS = 16


SKELETON_ACCURACY = 0.35  # the short prompt's skeleton, copied as it is, trains to this


class CountingEvaluator(ScriptedEvaluator):
    """The scripted evaluator, keeping every module it was asked to train; a module without a
    result marker is the prompt's skeleton copied back, which trains."""

    def __init__(self) -> None:
        self.trained: list[str] = []

    def evaluate(self, code: str) -> EvalResult:
        self.trained.append(code)
        if "# result: " not in code:
            return new_result("ok", "trained", code_hash(code), val_accuracy=SKELETON_ACCURACY)
        return super().evaluate(code)


@pytest.fixture
def searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    model = SmallModel(
        [generator_reply(i) for i in range(ITERATIONS)],
        [improver_reply(i) for i in range(ITERATIONS)],
    )
    chats = {
        "generator": ResponderChat(responder=model, model=GENERATOR),
        "improver": ResponderChat(responder=model, model=IMPROVER),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, settings: chats[role])
    evaluator = CountingEvaluator()
    use_evaluator(monkeypatch, evaluator)
    graph = build_graph(checkpointer=InMemorySaver())
    ctx = Settings(runs_dir=tmp_path, iterations=ITERATIONS, history_k=5)
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
    windows = [
        list(state.get("window", []))
        for state in graph.stream({"run_id": "t"}, config, context=ctx, stream_mode="values")
    ]
    final = dict(graph.get_state(config).values)
    return model, evaluator, windows, final, RunArchive(tmp_path / "t")


def test_a_small_model_copies_repeats_and_echoes_and_the_loop_holds(searched: Any) -> None:
    model, evaluator, windows, final, archive = searched
    did = [what for _, what in model.draws]
    # the model did behave like a small one in this run
    assert did.count("copied") >= 3 and did.count("repeated") >= 3 and did.count("echo") >= 1

    assert final["iteration"] == ITERATIONS and final["stop_reason"] == "budget"
    # no program trained twice: every copy of the best was caught before the sandbox
    hashes = [code_hash(code) for code in evaluator.trained]
    assert len(hashes) == len(set(hashes))
    rows = archive.rows()
    reasks = [a for a in archive.attempts() if a["source"] == "reask"]
    assert reasks, "a copy of the best is re-asked"
    # a copy re-asked twice and copied again is the iteration's `duplicate`, never trained
    duplicates = [r for r in rows if r["kind"] == "duplicate"]
    assert len(duplicates) >= 2 and len(reasks) >= 2 * len(duplicates)

    # the best is the best of what was trained, and the state says so
    trained_ok = [r for r in rows if r["status"] == "ok"]
    best = max(trained_ok, key=lambda r: r["val_accuracy"])
    assert final["best"]["result"]["val_accuracy"] == best["val_accuracy"]
    assert final["ok_count"] == len(trained_ok)

    # repeated advice: one line of the memory with its count, never two equal lines in a row
    for window in windows:
        for a, b in itertools.pairwise(window):
            assert (a["problem"], a["suggestion"]) != (b["problem"], b["suggestion"])
    assert any(t.get("count", 1) >= 2 for window in windows for t in window)

    # an echoed prompt is never taken for advice: it is recorded as unreadable
    echoed_advice = [
        n for n, (who, what) in enumerate(model.draws) if (who, what) == (IMPROVER, "echo")
    ]
    problems = [t["problem"] for window in windows for t in window]
    assert all("## Task" not in p and "Dataset:" not in p for p in problems)
    if echoed_advice:
        assert UNREADABLE in problems
    # an echoed Generator prompt is a reply without code, charged as such
    if (GENERATOR, "echo") in model.draws:
        assert any(r["kind"] == "no_code" for r in rows)
