"""`graphs/nas.py` exports the compiled search graph, `graph`, for `langgraph.json`."""
