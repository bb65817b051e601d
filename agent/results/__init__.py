"""What a run leaves for people: its numbers, plots and report, the final test on the held-out
split, the export of the winner, and ablations over variants and seeds."""
