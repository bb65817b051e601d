"""The compiled search graph driven by scripted LLM roles and a scripted evaluator.

The Generator's script returns code that names the result it will get (`# result: ok 0.55`,
`# result: shape`, ...); the scripted evaluator reads that marker instead of training.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

import agent.nodes as nodes
from agent.graph import build_graph
from agent.settings import Settings
from agent.state import TaskInfo
from sandbox.code import code_hash
from sandbox.executors import LocalExecutor
from sandbox.result import EvalResult, new_result
from tools.train_candidate import make_train_candidate

# (kind, accuracy) per iteration: every failure kind, improvements and non-improvements
SCRIPT: list[tuple[str, float | None]] = [
    ("ok", 0.30),
    ("shape", None),
    ("ok", 0.45),
    ("syntax", None),
    ("ok", 0.40),
    ("oom", None),
    ("no_code", None),
    ("timeout", None),
    ("nan", None),
    ("ok", 0.55),
    ("import", None),
    ("runtime", None),
    ("killed", None),
    ("no_net", None),
    ("ok", 0.50),
]


def generator_reply(i: int) -> str:
    kind, acc = SCRIPT[i % len(SCRIPT)]
    if kind == "no_code":
        return "I think a deeper network would help here, with more channels."
    return (
        f"Here is candidate {i}.\n```python\nimport torch.nn as nn\n# result: {kind} {acc}\n"
        f"class Net(nn.Module):\n    width = {i}\n```"
    )


def improver_reply(i: int) -> str:
    return json.dumps({"problem": f"problem-{i}", "suggestion": f"suggestion-{i}"})


class RecordingChat(FakeListChatModel):
    """A scripted chat model that also keeps every prompt it was sent, and reports token usage
    as llama.cpp's and vLLM's servers do (the archive counts LLM calls by it)."""

    prompts: list[str] = []  # noqa: RUF012  (pydantic copies it per instance)

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in input if isinstance(m, BaseMessage)))
        reply = super().invoke(input, config, **kwargs)
        reply.usage_metadata = {"input_tokens": 40, "output_tokens": 20, "total_tokens": 60}
        return reply


@dataclass
class FakeDataset:
    name: str = "mnist5k"
    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    n_train: int = 3600


class ScriptedEvaluator:
    dataset = FakeDataset()

    def evaluate(self, code: str) -> EvalResult:
        match = re.search(r"# result: (\w+) (\S+)", code)
        assert match, code
        kind, acc = match.group(1), match.group(2)
        if kind == "ok":
            return new_result("ok", "trained", "h", val_accuracy=float(acc))
        return new_result(kind, f"{kind} failure", "h")

    def dry_run(self, code: str) -> EvalResult:
        """The check step's dry run: every scripted module builds; training decides."""
        return new_result("ok", "dry run passed", "h")


def use_evaluator(monkeypatch: pytest.MonkeyPatch, ev: ScriptedEvaluator) -> None:
    """Bind the search's doors into tools (`task_for`, `train_candidate_for`, `executor_for` for
    the check step's dry run) to `ev`: the real `train_candidate` tool and the local executor, in
    front of a scripted evaluator."""
    tool = make_train_candidate(LocalExecutor(ev))
    data = ev.dataset
    task = TaskInfo(
        dataset=data.name,
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        n_train=data.n_train,
    )
    monkeypatch.setattr(nodes, "task_for", lambda settings: task)
    monkeypatch.setattr(nodes, "train_candidate_for", lambda settings: tool)
    # the check step's door: its dry run goes through the same local executor
    monkeypatch.setattr(nodes, "executor_for", lambda settings: LocalExecutor(ev))


def run(tmp_path: Path, iterations: int = 15, **settings: Any) -> tuple[list[dict[str, Any]], Any]:
    """Run the graph; returns the state after each step and the final state."""
    graph = build_graph(checkpointer=InMemorySaver())
    ctx = Settings(runs_dir=tmp_path, iterations=iterations, **settings)
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
    states = list(graph.stream({"run_id": "t"}, config, context=ctx, stream_mode="values"))
    return states, graph.get_state(config).values


# The Improver echoing a window line into its problem, as small models do
ECHO = json.dumps(
    {
        "problem": "1. problem: too small -> suggestion: widen -> outcome: ok: val accuracy 0.5",
        "suggestion": "Widen the first convolution to 64 channels.",
    }
)


def scripted_roles(
    monkeypatch: pytest.MonkeyPatch, generator: list[str], improver: list[str]
) -> dict[str, RecordingChat]:
    chats = {
        "generator": RecordingChat(responses=generator, prompts=[]),
        "improver": RecordingChat(responses=improver, prompts=[]),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, settings: chats[role])
    return chats


def run_to_end_state(tmp_path: Path, graph: Any = None, **settings: Any) -> dict[str, Any]:
    graph = graph or build_graph(checkpointer=InMemorySaver())
    ctx = Settings(runs_dir=tmp_path, **settings)
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
    graph.invoke({"run_id": "t"}, config, context=ctx)
    return dict(graph.get_state(config).values)


# Modules a stuck Generator repeats, another, and one that forgot its import
STUCK = "```python\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    width = 1\n```"
OTHER = "```python\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    width = 2\n```"
NO_IMPORT = "```python\nclass Net(nn.Module):\n    width = 3\n```"


class CountingEvaluator(ScriptedEvaluator):
    """Trains by the module's width (accuracy 0.1 per unit) and counts what it is asked."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.dry_runs: list[str] = []

    def evaluate(self, code: str) -> EvalResult:
        self.trained.append(code)
        width = int(re.search(r"width = (\d+)", code).group(1))  # type: ignore[union-attr]
        return new_result("ok", "trained", code_hash(code), val_accuracy=0.1 * width)

    def dry_run(self, code: str) -> EvalResult:
        self.dry_runs.append(code)
        return new_result("ok", "dry run passed", code_hash(code))
