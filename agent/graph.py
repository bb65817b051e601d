"""Builds the search graph: setup → generate → train → improve → (generate | end).

With `--parallel N` (N > 1) each round fans out: `fan_out` sends N branches to `generate`, each
branch's `generate` sends its code to its own `train`, and `improve` runs once when the whole
round is in (agent/nodes.py, agent/state.py). With N = 1 it is the loop above, one candidate at
a time.

graphs/nas.py compiles it without a checkpointer, as `langgraph dev` requires (it brings its own);
`python -m agent.run` builds one with a SQLite checkpointer in the run directory (agent/search.py).
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.nodes import fan_out, generate, improve, route_after_improve, setup, train
from agent.settings import Settings
from agent.state import State


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[State, Settings, Any, Any]:
    builder = StateGraph(State, context_schema=Settings)
    builder.add_node("setup", setup)
    builder.add_node("generate", generate, destinations=("train",))  # goto: train (or Send)
    builder.add_node("train", train)
    builder.add_node("improve", improve)
    builder.add_edge(START, "setup")
    builder.add_conditional_edges("setup", fan_out, ["generate"])
    builder.add_edge("train", "improve")
    builder.add_conditional_edges(
        "improve", route_after_improve, {"generate": "generate", "end": END}
    )
    return builder.compile(checkpointer=checkpointer, name="nas")
