"""`python -m agent.ablate`: variants of the search x seeds, compared (agent/results/ablate.py)."""

import sys

from agent.results.ablate import main

if __name__ == "__main__":
    sys.exit(main())
