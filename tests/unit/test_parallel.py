"""Parallel rounds (`--parallel N`) through the compiled graph, with scripted roles.

The scripted Generator answers by sampling seed (run seed + iteration), so replies do not depend
on which branch's thread asks first; the scripted evaluator reads the result marker in the code
(tests/unit/test_graph.py). Every assertion is about the round: counts, order, the triples each
candidate closes, the one Improver call, resume after a crash in the middle of a round.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.graph import build_graph
from agent.settings import Settings
from sandbox.result import EvalResult
from sandbox.settings import SettingsError
from tests.helpers.graph import SCRIPT, ScriptedEvaluator, generator_reply, use_evaluator


class SeededChat:
    """A chat model whose reply is chosen by the request's seed; records every call."""

    def __init__(self, role: str, reply: Any, calls: list[dict[str, Any]]) -> None:
        self.role, self.reply, self.calls = role, reply, calls
        self.temperature: float | None = None

    def invoke(self, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
        seed = int(kwargs["seed"])
        prompt = "\n".join(str(m.content) for m in messages)
        self.calls.append(
            {"role": self.role, "seed": seed, "temperature": self.temperature, "prompt": prompt}
        )
        usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return AIMessage(content=self.reply(seed), usage_metadata=usage)


class CountingEvaluator(ScriptedEvaluator):
    """Counts evaluations per code; `crash_once` makes one iteration's first evaluation raise."""

    def __init__(self, crash_once: int | None = None) -> None:
        self.count: dict[str, int] = {}
        self.crash_once = crash_once
        self.lock = threading.Lock()

    def evaluate(self, code: str) -> EvalResult:
        with self.lock:
            self.count[code] = self.count.get(code, 0) + 1
            first = self.count[code] == 1
        width = re.search(r"width = (\d+)", code)
        if first and width and int(width.group(1)) == self.crash_once:
            time.sleep(1.0)  # let the sibling branch finish and be saved first
            raise RuntimeError("the orchestrator died here")
        return super().evaluate(code)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = []

    def improver_reply(seed: int) -> str:
        return json.dumps({"problem": f"problem-{seed}", "suggestion": f"suggestion-{seed}"})

    def chat_for(role: str, settings: Settings) -> SeededChat:
        chat = SeededChat(
            role, generator_reply if role == "generator" else improver_reply, recorded
        )
        chat.temperature = settings.generator_temperature if role == "generator" else None
        return chat

    monkeypatch.setattr(nodes, "chat_for", chat_for)
    return recorded


@pytest.fixture
def evaluator(monkeypatch: pytest.MonkeyPatch) -> CountingEvaluator:
    ev = CountingEvaluator()
    use_evaluator(monkeypatch, ev)
    return ev


def run(tmp_path: Path, checkpointer: Any = None, **settings: Any) -> tuple[Any, Any, Any]:
    graph = build_graph(checkpointer=checkpointer or InMemorySaver())
    ctx = Settings(runs_dir=tmp_path, **settings)
    config: Any = {"configurable": {"thread_id": "p"}, "recursion_limit": 500}
    graph.invoke({"run_id": "p"}, config, context=ctx)
    return graph, config, ctx


def test_rounds_count_order_triples_and_one_improver_call(
    tmp_path: Path, calls: list[dict[str, Any]], evaluator: CountingEvaluator
) -> None:
    # rounds: 0-2, 3-5, 6-8, then 9 alone (the budget counts candidates, the last round is cut)
    graph, config, _ = run(tmp_path, iterations=10, parallel=3, history_k=5)
    final = graph.get_state(config).values
    assert final["iteration"] == 10 and final["stop_reason"] == "budget"
    assert final["round"] == [] and final["round_size"] == 1

    generator = [c for c in calls if c["role"] == "generator"]
    improver = [c for c in calls if c["role"] == "improver"]
    assert sorted(c["seed"] for c in generator) == list(range(10))  # one draw per iteration
    # a round's branches spread the Generator's temperature over 0.7 ± 0.2; a lone one is 0.7
    temps = {c["seed"]: c["temperature"] for c in generator}
    assert [temps[i] for i in (0, 1, 2, 6, 7, 8, 9)] == [0.5, 0.7, 0.9, 0.5, 0.7, 0.9, 0.7]
    # one Improver call per round, seeded by the round's last iteration; none at the budget
    assert [c["seed"] for c in improver] == [2, 5, 8]

    # the Improver after round 3-5 saw every outcome, the round's focus (its only success) in full
    prompt = improver[1]["prompt"]
    assert "All 3 attempts of this round" in prompt
    assert "attempt 3: failed (syntax)" in prompt and "attempt 5: failed (oom)" in prompt
    assert "Network of attempt 4" in prompt and "width = 4" in prompt

    # each candidate closed its own copy of the round's pending triple, in iteration order
    assert [t["iteration"] for t in final["window"]] == [5, 6, 7, 8, 9]
    assert [t["suggestion"] for t in final["window"]] == [
        "suggestion-2",
        "suggestion-5",
        "suggestion-5",
        "suggestion-5",
        "suggestion-8",
    ]
    assert "oom" in final["window"][0]["outcome"] and final["window"][4]["outcome"].startswith("ok")

    # the best takes in every candidate of a round; last = the focus (no success: the highest)
    assert final["best"]["iteration"] == 9 and final["best"]["result"]["val_accuracy"] == 0.55
    assert final["ok_count"] == sum(1 for kind, _ in SCRIPT[:10] if kind == "ok") == 4

    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "p").rows()
    assert [r["iteration"] for r in rows] == list(range(10))
    assert [r["kind"] for r in rows] == [kind for kind, _ in SCRIPT[:10]]
    assert [r["next_suggestion"] for r in rows] == [
        *["suggestion-2"] * 3,
        *["suggestion-5"] * 3,
        *["suggestion-8"] * 3,
        None,
    ]
    assert [r["closed_triple"] for r in rows[:3]] == [None] * 3  # nothing pending before
    triples = [json.loads(r["closed_triple"]) for r in rows[3:]]
    assert [t["iteration"] for t in triples] == list(range(3, 10))
    assert [t["suggestion"] for t in triples] == [
        *["suggestion-2"] * 3,
        *["suggestion-5"] * 3,
        "suggestion-8",
    ]
    assert triples[-5:] == final["window"]  # the archive and the checkpoint agree
    # one Improver call, its tokens counted once: on its round's last row
    assert [r["iteration"] for r in rows if r["improver_tokens"]] == [2, 5, 8]
    assert all(n == 1 for n in evaluator.count.values())


def test_window_stays_at_k_with_wide_rounds(
    tmp_path: Path, calls: list[dict[str, Any]], evaluator: CountingEvaluator
) -> None:
    graph, config, _ = run(tmp_path, iterations=12, parallel=4, history_k=3)
    final = graph.get_state(config).values
    assert [t["iteration"] for t in final["window"]] == [9, 10, 11]
    history = [s.values.get("window", []) for s in graph.get_state_history(config)]
    assert max(len(w) for w in history) == 3


def test_a_budget_of_llm_calls_cuts_the_last_round_to_the_calls_left(
    tmp_path: Path, calls: list[dict[str, Any]], evaluator: CountingEvaluator
) -> None:
    # round 0-2 (3 Generator calls), the Improver (4), then 2 calls are left: a round of 3 would
    # spend 7, so it is cut to 2 branches and the budget is spent exactly
    graph, config, _ = run(tmp_path, iterations=15, parallel=3, llm_calls=6)
    final = graph.get_state(config).values
    assert final["stop_reason"] == "llm_calls" and final["iteration"] == 5
    assert sum(nodes.run_archive(Settings(runs_dir=tmp_path), "p").llm_calls()) == 6
    assert len(calls) == 6


def test_target_reached_in_a_round_stops_after_the_whole_round(
    tmp_path: Path, calls: list[dict[str, Any]], evaluator: CountingEvaluator
) -> None:
    graph, config, _ = run(tmp_path, iterations=12, parallel=3, target_accuracy=0.44)
    final = graph.get_state(config).values
    assert final["stop_reason"] == "target" and final["iteration"] == 3
    assert final["best"]["iteration"] == 2
    assert [c for c in calls if c["role"] == "improver"] == []


def test_parallel_one_leaves_the_classic_state_untouched(
    tmp_path: Path, calls: list[dict[str, Any]], evaluator: CountingEvaluator
) -> None:
    graph, config, _ = run(tmp_path, iterations=4, parallel=1)
    for snapshot in graph.get_state_history(config):
        assert "round_size" not in snapshot.values and not snapshot.values.get("round")
    assert [c["temperature"] for c in calls if c["role"] == "generator"] == [0.7] * 4


def test_a_round_interrupted_mid_way_resumes_without_retraining(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = CountingEvaluator(crash_once=3)  # the second branch of the round 2-3
    use_evaluator(monkeypatch, ev)
    saver = InMemorySaver()
    with pytest.raises(RuntimeError, match="orchestrator died"):
        run(tmp_path, checkpointer=saver, iterations=6, parallel=2)
    # iteration 2 (the sibling) was trained and archived; 3 was not
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "p").rows()
    assert [r["iteration"] for r in rows] == [0, 1, 2]

    graph = build_graph(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "p"}, "recursion_limit": 500}
    graph.invoke(None, config, context=Settings(runs_dir=tmp_path, iterations=6, parallel=2))
    final = graph.get_state(config).values
    assert final["iteration"] == 6 and final["stop_reason"] == "budget"
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "p").rows()
    assert [r["iteration"] for r in rows] == list(range(6))
    # only the interrupted branch ran again: no other candidate trained twice, no LLM call redone
    assert sorted(ev.count.values()) == [1, 1, 1, 1, 1, 2]
    seeds = [c["seed"] for c in calls if c["role"] == "generator"]
    assert sorted(seeds) == list(range(6))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NASLOOP_EXECUTOR", "ray:/127.0.0.1:10001"),
        ("NASLOOP_EXECUTOR", "ray://nohost"),
        ("NASLOOP_EXECUTOR", "dask"),
        ("NASLOOP_PARALLEL", "0"),
        ("NASLOOP_RAY_RETRIES", "-1"),
    ],
)
def test_bad_parallel_or_executor_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from agent.settings import load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{name}=")


def test_executor_values() -> None:
    from agent.settings import load_settings

    for value in ("local", "ray", "ray://127.0.0.1:10001", " ray://head.example:10001 "):
        assert load_settings(executor=value).executor == value.strip()


@pytest.mark.parametrize("parallel", [1, 3])
def test_the_budget_of_calls_is_counted_in_state_not_read_back_from_the_archive(
    tmp_path: Path,
    calls: list[dict[str, Any]],
    evaluator: CountingEvaluator,
    monkeypatch: pytest.MonkeyPatch,
    parallel: int,
) -> None:
    """The archive is the record, not a control input: with its count unreadable the budget is
    still spent exactly, and the state's count is the number of calls made."""

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the search read its budget back from the archive")

    monkeypatch.setattr(RunArchive, "llm_calls", unreadable)
    graph, config, _ = run(tmp_path, iterations=15, parallel=parallel, llm_calls=6)
    final = graph.get_state(config).values
    assert final["stop_reason"] == "llm_calls"
    assert final["calls_spent"] == len(calls) == 6


def test_the_generator_prompt_is_built_once_per_iteration_by_generate_alone(
    tmp_path: Path,
    calls: list[dict[str, Any]],
    evaluator: CountingEvaluator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`train` carries on with the prompt `generate` built (for re-asks and fixes) and the state
    drops it once the iteration is trained."""
    built: list[int] = []
    real = nodes.generator_prompt

    def counting(state: Any, settings: Settings) -> Any:
        built.append(state["iteration"])
        return real(state, settings)

    monkeypatch.setattr(nodes, "generator_prompt", counting)
    graph, config, _ = run(tmp_path, iterations=4)
    assert built == [0, 1, 2, 3]
    assert graph.get_state(config).values.get("prompt") is None
