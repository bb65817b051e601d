"""What a run leaves for its user: summary numbers, plots, report, and the per-candidate view."""
