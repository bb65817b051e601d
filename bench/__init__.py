"""Benchmark scripts: each prints a readable table and can write its figures as JSON."""
