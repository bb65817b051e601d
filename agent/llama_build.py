"""`python -m agent.llama_build [--force]`: find or build llama-server (llm_server/build.py)."""

import sys

from agent.llm_server.build import main

if __name__ == "__main__":
    sys.exit(main())
