"""Graph assembly only: `build_graph(...)` and the module-level `graph` for `langgraph.json`."""
