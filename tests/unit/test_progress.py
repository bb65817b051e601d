"""The progress view: candidates in iteration order with their worker, whatever order they finish.

The events are the graph's own (a parallel run of the scripted graph, stream mode "custom"),
then delivered the way parallel branches deliver them: each round's candidates shuffled.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from agent.graph import build_graph
from agent.progress import InOrder, PlainProgress, Scoreboard, candidate_line, progress_view
from agent.settings import Settings
from tests.helpers.graph import SCRIPT, RecordingChat

LINE = re.compile(r"^\[(\d+)/(\d+)\] w(\d) best (\S+) \| success (\d+)/(\d+) \(\d+%\) \| last ")


def custom_events(tmp_path: Path, iterations: int, parallel: int) -> list[dict[str, Any]]:
    graph = build_graph(checkpointer=InMemorySaver())
    ctx = Settings(runs_dir=tmp_path, iterations=iterations, parallel=parallel)
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
    return list(graph.stream({"run_id": "t"}, config, context=ctx, stream_mode="custom"))


def shuffled_rounds(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Each round's events (up to its `advising`) in a random order, as branches finish."""
    out: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for event in events:
        if event.get("stage") == "advising":
            rng.shuffle(held)
            out += [*held, event]
            held = []
        else:
            held.append(event)
    rng.shuffle(held)
    return out + held


def test_parallel_lines_come_in_iteration_order_with_their_worker(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    events = custom_events(tmp_path, iterations=12, parallel=3)
    candidates = [e for e in events if e.get("event") == "candidate"]
    assert sorted(e["iteration"] for e in candidates) == list(range(12))
    assert {e["worker"] for e in candidates} == {1, 2, 3}
    # which branch drew which scripted reply depends on thread timing: take each one's kind
    kinds = {e["iteration"]: e["kind"] for e in candidates}
    assert sorted(kinds.values()) == sorted(k for k, _ in SCRIPT[:12])
    stages = {e["stage"] for e in events if e.get("event") == "stage"}
    assert stages == {"generating", "checking", "training", "advising"}
    reordered = 0
    for seed in range(5):
        delivered = shuffled_rounds(events, random.Random(seed))
        arrival = [e["iteration"] for e in delivered if e.get("event") == "candidate"]
        reordered += arrival != list(range(12))
        out = io.StringIO()
        view = PlainProgress(12, {}, out)
        for event in delivered:
            view.event(event)
        view.close()
        lines = out.getvalue().splitlines()
        parsed = [LINE.match(line) for line in lines]
        assert all(parsed), lines
        assert [int(m.group(1)) for m in parsed if m] == list(range(1, 13))
        workers = [int(m.group(3)) for m in parsed if m]
        assert workers == [i % 3 + 1 for i in range(12)]  # slot n of each round: worker n+1
        # the success count is cumulative in iteration order
        oks = [int(m.group(5)) for m in parsed if m]
        assert oks == [sum(kinds[j] == "ok" for j in range(i + 1)) for i in range(12)]
    assert reordered >= 4  # the deliveries really were out of order


def test_in_order_holds_later_candidates_and_a_join_releases_the_rest() -> None:
    order = InOrder(4)
    assert order.push({"iteration": 6}) == []
    assert order.push({"iteration": 5}) == []
    assert [e["iteration"] for e in order.push({"iteration": 4})] == [4, 5, 6]
    assert order.push({"iteration": 9}) == []
    # iterations 7 and 8 finished before a crash: the resumed round's join releases 9
    assert [e["iteration"] for e in order.release_through(9)] == [9]
    assert order.next == 10 and order.release_all() == []


def test_plain_when_not_a_terminal_and_lines_as_before() -> None:
    out = io.StringIO()
    assert isinstance(progress_view(5, {}, stream=out), PlainProgress)
    tally = Scoreboard(
        5, {"iteration": 2, "ok_count": 1, "best": {"result": {"val_accuracy": 0.5}}}
    )
    event = {"iteration": 2, "kind": "shape", "message": "mat1 and mat2", "worker": None}
    tally.take(event)
    assert candidate_line(event, tally) == (
        "[3/5] best 0.5000 | success 1/3 (33%) | last shape: mat1 and mat2"
    )
