"""Other agents using the search, in this process: as a subgraph, and as a tool an agent calls.

The real path below the caller: the search's LLM roles talk to the test's OpenAI-compatible HTTP
server (recorded replies of a small model), candidates train in the Docker sandbox on MNIST-5k.
Only the *calling* agent's model is scripted. (The third way, a client of `langgraph dev` through
langgraph-sdk / RemoteGraph, is in test_studio.py.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import tools.train_candidate as train_candidate_module
from agent.archive.candidates import RunArchive
from agent.settings import Settings
from agent.state import State
from graphs.nas import graph as nas_graph
from sandbox.backends.docker import OWNER_LABEL, owner_label
from tests.fakes import MNIST5K_REPLIES, FakeOpenAIServer, ScriptedResponder
from tools.search import search_architectures

pytestmark = pytest.mark.docker
CONSTRAINTS = "at most 120k parameters; no attention layers"


@pytest.fixture
def llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(ScriptedResponder.from_file(MNIST5K_REPLIES)) as server:
        yield server


@pytest.fixture
def nasloop_env(
    tmp_path: Path,
    llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: Any,
    sandbox_image: str,
) -> Iterator[Path]:
    """NASLOOP_* for this process (the tool reads settings from the environment); runs dir."""
    runs = tmp_path / "runs"
    for name, value in {
        "DATASET": "cifar10",  # the tool's `dataset` argument must win over this
        "DATA_DIR": str(tmp_path / "data"),
        "RUNS_DIR": str(runs),
        "SANDBOX": "docker",
        "TRAIN_LIMIT": "600",
        "TIMEOUT_S": "120",
        # reply 0 flattens with `.view`, which a channels_last input tensor refuses
        "CHANNELS_LAST": "false",
        "GENERATOR_BASE_URL": llm.base_url,
        "GENERATOR_MODEL": "fake-generator",
        "IMPROVER_MODEL": "fake-improver",
        "LLM_RETRIES": "1",
    }.items():
        monkeypatch.setenv(f"NASLOOP_{name}", value)
    owner = {"label": f"{OWNER_LABEL}={owner_label()}"}
    # session-scoped fixtures (a shared warm pool) may hold containers of this process already
    before = {c.id for c in docker_client.containers.list(all=True, filters=owner)}
    yield runs
    # The tool's evaluators live as long as this process (a warm worker with them); close them,
    # then no container this test started may remain (other runs on the machine may have their own).
    train_candidate_module.close_all()
    after = docker_client.containers.list(all=True, filters=owner)
    assert [c for c in after if c.id not in before] == []


# --- (a) the compiled graph as a subgraph node -------------------------------------------------


class ParentState(State, total=False):
    """A parent that extends our state with its own keys: the subgraph shares the common ones."""

    request: str
    report: str


def report(state: ParentState) -> dict[str, Any]:
    best = state.get("best")
    score = best["result"]["val_accuracy"] if best else None
    return {"report": f"{state['iteration']} candidates for {state['request']!r}; best {score}"}


def test_graph_as_a_subgraph_node(nasloop_env: Path) -> None:
    builder = StateGraph(ParentState, context_schema=Settings)
    builder.add_node("nas", nas_graph)  # the very object langgraph.json serves
    builder.add_node("report", report)
    builder.add_edge(START, "nas")
    builder.add_edge("nas", "report")
    builder.add_edge("report", END)
    parent = builder.compile(checkpointer=InMemorySaver())  # the subgraph uses it too

    run_id = "parent-" + uuid.uuid4().hex[:6]
    config: Any = {"configurable": {"thread_id": run_id}, "recursion_limit": 100}
    # the parent's runtime context reaches the subgraph's nodes: their Settings
    context = Settings(dataset="mnist5k", iterations=2, constraints=CONSTRAINTS)
    start: Any = {"request": "digits"}  # everything else the subgraph's setup fills in
    events: list[dict[str, Any]] = []
    for ns, mode, data in parent.stream(
        start,
        config,
        context=context,
        stream_mode=["custom", "updates"],
        subgraphs=True,
    ):
        if mode == "custom" and isinstance(data, dict):
            assert ns and ns[0].startswith("nas:")  # tagged with the subgraph's namespace
            events.append(data)
    assert {e["event"] for e in events} >= {"candidate", "stage"}  # the live view's too
    events = [e for e in events if e["event"] == "candidate"]
    assert [e["iteration"] for e in events] == [0, 1]
    assert events[0]["kind"] == "ok"

    final = parent.get_state(config).values
    assert final["iteration"] == 2 and final["stop_reason"] == "budget"
    assert len(final["window"]) == 1 and final["best"]["result"]["val_accuracy"] > 0
    assert final["report"].startswith("2 candidates for 'digits'")
    assert final["run_id"] == run_id  # the parent's thread names the run archive
    rows = RunArchive(nasloop_env / run_id).rows()
    assert [r["iteration"] for r in rows] == [0, 1]


# --- (b) the whole search as a tool of a tool-calling agent ------------------------------------


class ScriptedToolModel(FakeMessagesListChatModel):
    """Replies from a list, whatever it is asked; keeps the tools bound and the prompts seen."""

    bound: list[Any] = []  # noqa: RUF012  (pydantic copies it per instance)
    seen: list[list[BaseMessage]] = []  # noqa: RUF012

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
        self.bound.extend(tools)
        return self

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        self.seen.append(list(input) if isinstance(input, list) else [])
        return super().invoke(input, config, **kwargs)


def make_agent(model: ScriptedToolModel, tools: list[Any]) -> Any:
    """`langchain.agents.create_agent` where installed, else langgraph's prebuilt ReAct agent."""
    try:
        from langchain.agents import create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, tools, checkpointer=InMemorySaver())
    return create_agent(model, tools, checkpointer=InMemorySaver())


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_a_tool_calling_agent_runs_the_search(nasloop_env: Path, llm: FakeOpenAIServer) -> None:
    call = {"dataset": "mnist5k", "iterations": 2, "constraints": CONSTRAINTS}
    model = ScriptedToolModel(
        responses=[
            AIMessage("", tool_calls=[{"name": "search_architectures", "args": call, "id": "c1"}]),
            AIMessage("Found a network; the code is in the tool result."),
        ],
        bound=[],
        seen=[],
    )
    agent = make_agent(model, [search_architectures])
    config: Any = {"configurable": {"thread_id": "agent-1"}}
    out = agent.invoke({"messages": [("user", "Find a small net for MNIST digits.")]}, config)

    tool_messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and tool_messages[0].status == "success"
    result = json.loads(str(tool_messages[0].content))
    assert "error" not in result, result
    assert "class Net(" in result["best_code"] and result["best_val_accuracy"] > 0
    assert result["iterations"] == 2 and result["success_rate"] > 0
    run_dir = nasloop_env / result["run_id"]
    assert run_dir.is_dir() and [r["iteration"] for r in RunArchive(run_dir).rows()] == [0, 1]
    assert out["messages"][-1].content.startswith("Found a network")

    # the agent's model saw the tool's schema, then the tool's result
    (bound,) = model.bound
    assert bound.name == "search_architectures"
    assert {"dataset", "iterations", "constraints"} <= set(bound.args)
    assert any(isinstance(m, ToolMessage) for m in model.seen[-1])
    # the constraints went all the way into the Generator's prompt
    generator_prompts = [r for r in llm.requests if r.get("model") == "fake-generator"]
    assert generator_prompts and all(CONSTRAINTS in json.dumps(r) for r in generator_prompts)
