"""Sandbox backends: each runs one job (a runner, a candidate, a dataset) under hard limits."""
