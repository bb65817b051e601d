"""The search loop: settings, state and the K-window, prompts, LLM roles, reply readers, nodes, the
graph, one whole search (`search.py`) and its CLI (`run.py`), the run directory and archive; the
embedded LLM server in `llm_server/` and what a run leaves for people in `results/`
(docs/architecture.md)."""
