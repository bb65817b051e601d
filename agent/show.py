"""`python -m agent.show RUN_ID [ITERATION] [--json]`: a candidate's story (results/show.py)."""

import sys

from agent.results.show import main

if __name__ == "__main__":
    sys.exit(main())
