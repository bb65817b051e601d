"""`python -m agent COMMAND [ARGS]`: the commands beside the search itself, one door for all.

The search is `python -m agent.run` (also `python -m agent run`); each other command lives with
what it works on (a finished run's results, the embedded LLM server, the doctor) and is imported
only when named, so `python -m agent show ...` does not pay for torch or the graph.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module holding its `main(argv)`, what it does)
COMMANDS = {
    "run": ("agent.run", "search (resumable with --run-id)"),
    "doctor": ("agent.doctor", "what a run would use, and whether each part works"),
    "show": ("agent.results.show", "one candidate's story, or a run as a table"),
    "report": ("agent.results.report", "a run's report: numbers, markdown, plots"),
    "final_test": ("agent.results.final_test", "the top candidates, scored once on test"),
    "export": ("agent.results.export", "the winner and the settings behind it"),
    "ablate": ("agent.results.ablate", "variants of the search x seeds, compared"),
    "serve": ("agent.llm.server", "a local llama.cpp server for the LLM roles"),
    "llama_build": ("agent.llm.build", "find or build llama-server"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return f"usage: python -m agent COMMAND [ARGS]\n\ncommands:\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0 if args else 2
    name = args[0].replace("-", "_")  # `final-test` and `final_test` alike
    if name not in COMMANDS:
        print(f"nasloop: error: unknown command {args[0]!r}\n{usage()}", file=sys.stderr, end="")
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"python -m agent {name}", *args[1:]]  # what argparse shows as the program
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
