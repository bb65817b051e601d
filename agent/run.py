"""Headless search: `python -m agent.run [--flags]`, resumable with `--run-id`.

The argparse front of the search. Every flag mirrors a setting (`--history-k` is
NASLOOP_HISTORY_K, and so on; `--help` lists them with their defaults). Everything that can be
checked is checked before a run directory exists: settings, dataset, sandbox, LLM servers. Exit
codes: 0 done, 1 stopped by a failure (resumable), 2 bad input (nothing written), 3 stopped by
an infrastructure fault (the sandbox self-test failed, or the sandbox, its engine or the Ray
cluster failed mid-run: one line with the cause, the fix and the resume command; no candidate is
charged for it), 130 interrupted. A finished search then runs the final test, the export and the
report (`finish`); a failure there is one line on stderr and leaves the exit code at 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from agent.flags import add_setting_flags, setting_flags
from agent.search import run_to_end


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.run",
        description="Run (or resume) an LLM-driven architecture search. Every setting's flag "
        "mirrors a NASLOOP_* variable (.env.example); a flag given wins over the environment, "
        "and a resumed run keeps its own settings unless a flag changes them.",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--run-id", help="resume this run (or start a new run with this id)")
    run.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    run.add_argument(
        "--check",
        action="store_true",
        help="check settings, LLM server, dataset, sandbox and GPUs, then exit (agent.doctor)",
    )
    run.add_argument(
        "--embedded-model",
        metavar="MODEL",
        help="the embedded LLM server's model when no server is configured: coder-7b, coder-1.5b, "
        "small, a GGUF path or OWNER/REPO:FILE.gguf (NASLOOP_EMBEDDED_MODEL; default: by hardware)",
    )
    return add_setting_flags(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        from agent.doctor import report, run_checks

        return report(run_checks(setting_flags(args), args.embedded_model))
    with contextlib.ExitStack() as stack:  # holds the embedded LLM server, if one is started
        return _main(args, stack)


def _main(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    code, result = run_to_end(setting_flags(args), args.run_id, stack, args.embedded_model)
    if result is None:
        return code
    if args.json:
        print(json.dumps(result))
    else:
        best = result["best_val_accuracy"]
        print(
            f"done: {result['iterations']} candidates, success rate {result['success_rate']:.0%}, "
            f"best validation accuracy {best if best is None else f'{best:.4f}'}"
            f"\nbest code: {result['best_code_path']}\nrun: {result['run_dir']}"
        )
        top = result["final_test"][:1]
        if top and top[0]["test_accuracy"] is not None:
            print(f"test accuracy of the best (final test): {top[0]['test_accuracy']:.4f}")
        if result["report_dir"]:
            print(f"report: {result['report_dir']}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
