"""`python -m agent.export`: the winner and the settings behind it (agent/results/export.py)."""

import sys

from agent.results.export import main

if __name__ == "__main__":
    sys.exit(main())
