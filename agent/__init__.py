"""The search loop: settings, state and the K-window, prompts, LLM roles, reply readers, nodes, the
graph, one whole search and its CLI, the run directory and archive; the embedded LLM server and
what a run leaves for people (the map: docs/architecture.md)."""
