"""The search itself: settings and context, state and the K-window, prompts, LLM roles, nodes, the
run archive, reports and the `python -m agent.run` CLI (built in the search-loop issue)."""
