"""The search graph for `langgraph.json` (Studio, `langgraph dev`): built in agent/graph.py.

`graph` is compiled without a checkpointer, as `langgraph dev` requires (it brings its own).
"""

from agent.graph import build_graph

graph = build_graph()
