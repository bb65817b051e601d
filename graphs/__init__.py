"""The compiled search graph, `graphs.nas.graph`, exported for `langgraph.json`."""
