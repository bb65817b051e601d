"""The run's archive on disk: the run directory and its files, every candidate and attempt, every
LLM call, lineage, the one-process lock; written before the graph moves on, read once on resume."""
