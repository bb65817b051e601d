"""The compiled search graph driven by scripted LLM roles and a scripted evaluator.

The Generator's script returns code that names the result it will get (`# result: ok 0.55`,
`# result: shape`, ...); the scripted evaluator reads that marker instead of training. So twelve
and more iterations mixing every failure kind run in a second, and every assertion is about the
loop itself: the K-window, the best, what each prompt carries, the ablation switches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agent.nodes as nodes
from agent.graph import build_graph
from agent.settings import Settings
from tests.helpers.graph import (
    SCRIPT,
    RecordingChat,
    run,
)


def test_window_best_and_prompts_over_fifteen_iterations(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    states, final = run(tmp_path, iterations=15, history_k=5)
    assert final["iteration"] == 15 and final["stop_reason"] == "budget"

    # the window never exceeds K, and holds the newest triples in order, failures included
    assert max(len(s.get("window", [])) for s in states) == 5
    window = final["window"]
    assert [t["iteration"] for t in window] == [10, 11, 12, 13, 14]
    # the triple closed by iteration i carries the advice given after iteration i-1
    assert [t["suggestion"] for t in window] == [f"suggestion-{i}" for i in range(9, 14)]
    assert [t["outcome"].startswith("ok") for t in window] == [False, False, False, False, True]
    assert "import" in window[0]["outcome"] and "killed" in window[2]["outcome"]

    # the best changes only on improvement: 0.30 → 0.45 → 0.55, never to 0.40 or 0.50
    bests: list[float] = []
    for s in states:
        best = s.get("best")
        if best and (not bests or bests[-1] != best["result"]["val_accuracy"]):
            bests.append(best["result"]["val_accuracy"])
    assert bests == [0.30, 0.45, 0.55]
    assert final["ok_count"] == 5

    # the Generator's prompt carries the window, the last suggestion and the best code
    prompt = roles["generator"].prompts[14]
    assert "suggestion-13" in prompt
    assert "width = 9" in prompt  # the best candidate's code (iteration 9, 0.55)
    for t in window[:-1]:
        assert t["problem"] in prompt and t["suggestion"] in prompt

    # every candidate is archived, failures and the no-code reply included
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()
    assert [r["iteration"] for r in rows] == list(range(15))
    assert [r["kind"] for r in rows] == [k for k, _ in SCRIPT]
    assert rows[6]["code_path"] is None and rows[0]["code_path"] == "candidates/00000.py"


@pytest.mark.parametrize("k", [1, 8])
def test_k_is_honoured(tmp_path: Path, roles: dict[str, RecordingChat], k: int) -> None:
    states, final = run(tmp_path, iterations=12, history_k=k)
    assert max(len(s.get("window", [])) for s in states) == k
    assert [t["iteration"] for t in final["window"]] == list(range(12 - k, 12))


@pytest.mark.parametrize(
    ("switch", "absent"),
    [
        ("no_history", "problem-9"),  # an older window entry, not the latest suggestion
        ("no_improver", "suggestion-"),
        ("no_reference", "width = 9"),
    ],
)
def test_each_ablation_removes_exactly_what_it_names(
    tmp_path: Path, roles: dict[str, RecordingChat], switch: str, absent: str
) -> None:
    run(tmp_path, iterations=12, **{switch: True})  # the old names, still read as aliases
    prompt = roles["generator"].prompts[11]
    assert absent not in prompt
    if switch == "no_improver":
        assert roles["improver"].prompts == []
    else:
        assert "suggestion-10" in prompt  # the latest suggestion is still there
    if switch != "no_reference":
        assert "width = 9" in prompt  # best code (iteration 9) still shown
    if switch != "no_history" and switch != "no_improver":
        assert "problem-9" in prompt


def test_checkpoint_does_not_grow_with_iterations(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(checkpointer=saver)
        # K=3: the window is full before iteration 5, so any growth would be the run's own
        ctx = Settings(runs_dir=tmp_path, iterations=50, history_k=3)
        config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
        graph.invoke({"run_id": "t"}, config, context=ctx)
        sizes: dict[int, int] = {}
        for snap in graph.get_state_history(config):
            if snap.next in (("generate",), ()):  # between two iterations, and the end
                size = len(saver.serde.dumps_typed(snap.values)[1])
                sizes[snap.values["iteration"]] = max(size, sizes.get(snap.values["iteration"], 0))
    assert set(sizes) >= {5, 50}
    # same shape, same bounded contents: only a few digits in the code strings differ
    assert sizes[50] <= sizes[5] * 1.05, sizes


def test_a_budget_of_llm_calls_stops_the_search(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    from agent.archive.candidates import RunArchive

    for budget in (6, 7):  # even: the last call goes to the Generator, not to the Improver
        for chat in roles.values():
            chat.prompts.clear()
        _, final = run(tmp_path / str(budget), iterations=15, llm_calls=budget)
        assert final["stop_reason"] == "llm_calls"
        generator, improver = RunArchive(tmp_path / str(budget) / "t").llm_calls()
        # the calls the archive counts are the calls the roles answered, and the budget is spent
        # exactly: never one call over
        assert generator == len(roles["generator"].prompts)
        assert improver == len(roles["improver"].prompts)
        assert generator + improver == budget, (generator, improver)
    _, unlimited = run(tmp_path / "u", iterations=15)
    assert unlimited["stop_reason"] == "budget"
