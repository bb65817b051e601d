"""`python -m agent.serve`: a local llama.cpp server for the LLM roles (llm_server/server.py)."""

import sys

from agent.llm_server.server import main

if __name__ == "__main__":
    sys.exit(main())
