"""What enters the memory: the Improver's fields cleaned of echoed window text, unreadable replies
recorded as such, and a window that never holds two identical triples in a row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from agent.prompts import generator_messages
from agent.replies.advice import parse_improvement
from agent.replies.advice_cleaning import UNREADABLE, clean_advice, clean_field
from agent.state import State, TaskInfo, Triple, WindowUpdate, push_triples, update_window
from tests.fakes.mistakes import ADVICE

TASK = TaskInfo(dataset="mnist5k", input_shape=[1, 28, 28], num_classes=10, n_train=600)


def triple(i: int, problem: str = "p", suggestion: str = "s", outcome: str = "o") -> Triple:
    return Triple(iteration=i, problem=problem, suggestion=suggestion, outcome=outcome)


class TestWindow:
    def test_identical_triples_in_a_row_merge_with_a_count(self) -> None:
        window = push_triples([], [triple(0, outcome="failed 0")], keep=5)
        window = push_triples(window, [triple(1, outcome="failed 1")], keep=5)
        window = push_triples(window, [triple(2, outcome="failed 2")], keep=5)
        assert window == [
            Triple(iteration=2, problem="p", suggestion="s", outcome="failed 2", count=3)
        ]

    def test_different_triples_stay_apart_and_only_neighbours_merge(self) -> None:
        window: list[Triple] = []
        for t in (triple(0), triple(1, suggestion="t"), triple(2)):
            window = push_triples(window, [t], keep=5)
        assert [t["iteration"] for t in window] == [0, 1, 2]
        assert all("count" not in t for t in window)

    def test_a_parallel_rounds_triples_keep_their_own_outcomes(self) -> None:
        window = push_triples([triple(0)], [triple(1), triple(2), triple(3)], keep=5)
        assert [(t["iteration"], t.get("count", 1)) for t in window] == [(1, 2), (2, 1), (3, 1)]

    def test_the_window_keeps_k_distinct_lines_however_long_a_model_is_stuck(self) -> None:
        window: list[Triple] = []
        for i in range(4):
            window = update_window(
                window, WindowUpdate(append=[triple(i, problem=f"p{i}")], keep=3)
            )
        for i in range(4, 20):  # sixteen iterations of the same advice: one line
            window = update_window(window, WindowUpdate(append=[triple(i)], keep=3))
        assert [t["problem"] for t in window] == ["p2", "p3", "p"]
        assert window[-1].get("count") == 16

    def test_the_prompt_shows_the_count(self) -> None:
        merged = push_triples([triple(0)], [triple(1)], keep=5)
        text = str(
            generator_messages(TASK, best=None, last=None, suggestion="", window=merged)[1].content
        )
        assert "tried 2 times in a row" in text

    def test_a_checkpoint_round_trip_keeps_the_count(self, tmp_path: Path) -> None:
        """The window goes through the SQLite checkpointer a run resumes from (agent/search.py):
        a run reopened from its checkpoint file sees the merged line with its count, and the
        next iteration's same advice counts on from there."""
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph

        def improve(state: State) -> dict[str, Any]:  # the improve node's window update
            return {"window": WindowUpdate(append=[triple(state["iteration"])], keep=5)}

        builder = StateGraph(State)
        builder.add_node("improve", improve)
        builder.add_edge(START, "improve")
        builder.add_edge("improve", END)
        path = str(tmp_path / "checkpoints.sqlite")
        config: Any = {"configurable": {"thread_id": "r"}}
        first: Any = {"window": [triple(0)], "iteration": 1}
        with SqliteSaver.from_conn_string(path) as saver:
            builder.compile(checkpointer=saver).invoke(first, config)
        with SqliteSaver.from_conn_string(path) as saver:  # a new process: the file only
            graph = builder.compile(checkpointer=saver)
            window = graph.get_state(config).values["window"]
            assert window == [
                Triple(iteration=1, problem="p", suggestion="s", outcome="o", count=2)
            ]
            graph.invoke(cast(Any, {"iteration": 2}), config)
        with SqliteSaver.from_conn_string(path) as saver:
            window = builder.compile(checkpointer=saver).get_state(config).values["window"]
        assert window == [Triple(iteration=2, problem="p", suggestion="s", outcome="o", count=3)]


class TestHygiene:
    @pytest.mark.parametrize(
        ("echoed", "clean"),
        [
            (
                "NameError sqrt -> suggestion: import it -> outcome: failed (runtime)",
                "NameError sqrt",
            ),
            ("1. problem: wrong size -> suggestion: fix it", "wrong size"),
            ("problem: the flatten is off", "the flatten is off"),
            ("Problem = too few channels -> outcome: ok: val accuracy 0.9", "too few channels"),
            ("a plain diagnosis, nothing echoed", "a plain diagnosis, nothing echoed"),
            ("x->y is a fine arrow", "x->y is a fine arrow"),
        ],
    )
    def test_echoed_window_text_is_cut(self, echoed: str, clean: str) -> None:
        assert clean_field(echoed) == clean

    def test_the_mistakes_personas_advice_enters_the_memory_clean(self) -> None:
        for advice in ADVICE:
            if advice is None:
                continue
            pending = clean_advice(parse_improvement(json.dumps(advice)), 300)
            for field in (pending["problem"], pending["suggestion"]):
                assert " -> suggestion: " not in field and " -> outcome: " not in field
                assert not field.lower().startswith(("problem:", "1."))
            assert pending["suggestion"] == advice["suggestion"]

    @pytest.mark.parametrize(
        "reply",
        [
            "I think the network looks reasonable.",
            "",
            '{"problem": "x", "suggestion": ""}',
            '{"problem": "-> suggestion: -> outcome:", "suggestion": "-> outcome: failed"}',
        ],
    )
    def test_an_unreadable_reply_is_recorded_as_unreadable_not_as_a_diagnosis(
        self, reply: str
    ) -> None:
        pending = clean_advice(parse_improvement(reply), 300)
        assert pending == {"problem": UNREADABLE, "suggestion": ""}

    def test_fields_are_clipped(self) -> None:
        pending = clean_advice({"problem": "p" * 999, "suggestion": "s" * 999}, 300)
        assert len(pending["problem"]) == 300 and len(pending["suggestion"]) == 300
