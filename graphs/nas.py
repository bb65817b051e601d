"""The search graph for `langgraph.json` (Studio, `langgraph dev`): the agent's own graph.

`graph` is compiled without a checkpointer, as `langgraph dev` requires (it brings its own).
"""

from agent.graph import build_graph

graph = build_graph()
