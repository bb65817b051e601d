"""`python -m agent.report`: a run's report: numbers, markdown, plots (agent/results/report.py)."""

import sys

from agent.results.report import main

if __name__ == "__main__":
    sys.exit(main())
