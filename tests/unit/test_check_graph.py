"""The check step inside the compiled graph: a Generator stuck on one module, an Improver that
echoes the window, and the switches that bring back the paper's protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agent.nodes as nodes
from agent.graph import build_graph
from agent.prompts import generator_messages
from agent.replies.advice_cleaning import UNREADABLE
from agent.settings import Settings
from tests.helpers.graph import (
    ECHO,
    NO_IMPORT,
    OTHER,
    STUCK,
    CountingEvaluator,
    run_to_end_state,
    scripted_roles,
    use_evaluator,
)


@pytest.fixture
def evaluator(monkeypatch: pytest.MonkeyPatch) -> CountingEvaluator:
    ev = CountingEvaluator()
    use_evaluator(monkeypatch, ev)
    return ev


def test_a_stuck_generator_costs_re_asks_not_trainings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluator: CountingEvaluator
) -> None:
    chats = scripted_roles(monkeypatch, [STUCK] * 20, [ECHO])
    final = run_to_end_state(tmp_path, iterations=3)
    assert len(evaluator.trained) == 1  # the stuck module trained once, in iteration 0
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()
    assert [r["kind"] for r in rows] == ["ok", "duplicate", "duplicate"]
    assert final["ok_count"] == 1
    assert len(chats["generator"].prompts) == 1 + 3 + 3  # each later iteration: ask + 2 re-asks
    assert "identical to attempt 0, which trained (ok)" in chats["generator"].prompts[2]
    # the Improver is told, and its echoed window line never enters the memory
    assert "duplicate" in chats["improver"].prompts[-1]
    for triple in final["window"]:
        assert " -> " not in triple["problem"] and triple["problem"] == "too small"
    # the same (problem, suggestion) twice in a row: one window line, counted
    assert [t.get("count", 1) for t in final["window"]] == [2]


def test_a_resumed_run_remembers_what_it_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluator: CountingEvaluator
) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    scripted_roles(monkeypatch, [STUCK, OTHER, STUCK, STUCK, STUCK], [ECHO])
    with SqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        run_to_end_state(tmp_path, build_graph(checkpointer=saver), iterations=2)
    nodes.archive_for.cache_clear()  # a new process: nothing in memory but the disk
    with SqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
        graph.update_state(config, {"stop_reason": None}, as_node="improve")
        graph.invoke(None, config, context=Settings(runs_dir=tmp_path, iterations=3))
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()
    assert [r["kind"] for r in rows] == ["ok", "ok", "duplicate"]
    assert len(evaluator.trained) == 2


def test_a_missing_import_is_fixed_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluator: CountingEvaluator
) -> None:
    scripted_roles(monkeypatch, [NO_IMPORT], [ECHO])
    run_to_end_state(tmp_path, iterations=1)
    (trained,) = evaluator.trained
    assert "import" in trained and "class Net(nn.Module)" in trained
    attempts = nodes.run_archive(Settings(runs_dir=tmp_path), "t").attempts()
    assert [a["source"] for a in attempts] == ["generator", "fix:imports"]
    assert [a["stage"] for a in attempts] == ["lint", "train"]
    assert "+" in attempts[1]["diff"]


def test_switches_off_give_the_papers_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluator: CountingEvaluator
) -> None:
    chats = scripted_roles(monkeypatch, [NO_IMPORT, NO_IMPORT, NO_IMPORT], ["not json at all"])
    run_to_end_state(
        tmp_path,
        iterations=3,
        novelty=False,
        auto_fix=False,
        prompt_style="paper",
        single_shot=True,
    )
    assert evaluator.dry_runs == []  # no cascade
    assert len(evaluator.trained) == 3  # every repeat trained as it is (the sandbox's cache)
    task = {"dataset": "mnist5k", "input_shape": [1, 28, 28], "num_classes": 10, "n_train": 3600}
    expected = generator_messages(task, best=None, last=None, suggestion="", window=[])  # type: ignore[arg-type]
    assert chats["generator"].prompts == ["\n".join(str(m.content) for m in expected)] * 3
    assert chats["improver"].prompts == []  # single shot: no Improver


def test_an_unreadable_improver_reply_is_recorded_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluator: CountingEvaluator
) -> None:
    scripted_roles(monkeypatch, [STUCK, OTHER], ["I cannot say."])
    final = run_to_end_state(tmp_path, iterations=2)
    assert final["window"][0]["problem"] == UNREADABLE
    assert final["window"][0]["suggestion"] == ""
