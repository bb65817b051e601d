"""The search graph: setup → generate → train → improve → (generate | end).

`graph` is compiled without a checkpointer, as `langgraph dev` requires (it brings its own);
`python -m agent.run` builds one with a SQLite checkpointer in the run directory.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.nodes import generate, improve, route_after_improve, setup, train
from agent.settings import Settings
from agent.state import State


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[State, Settings, Any, Any]:
    builder = StateGraph(State, context_schema=Settings)
    builder.add_node("setup", setup)
    builder.add_node("generate", generate)
    builder.add_node("train", train)
    builder.add_node("improve", improve)
    builder.add_edge(START, "setup")
    builder.add_edge("setup", "generate")
    builder.add_edge("generate", "train")
    builder.add_edge("train", "improve")
    builder.add_conditional_edges(
        "improve", route_after_improve, {"generate": "generate", "end": END}
    )
    return builder.compile(checkpointer=checkpointer, name="nas")


graph = build_graph()
