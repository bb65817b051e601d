"""`python -m agent.final_test`: the top candidates, scored once on test (results/final_test.py)."""

import sys

from agent.results.final_test import main

if __name__ == "__main__":
    sys.exit(main())
