"""What the commands on a finished run share (`python -m agent report`, `export`, `final_test`):
the run's id and `--runs-dir`, and bad input as one line, `nasloop: error: ...`, exit code 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from sandbox.settings import SettingsError, bad_input


def run_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A command's parser with the run's id and `--runs-dir` already in it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run_id", help="the run (its directory's name under the runs dir)")
    parser.add_argument("--runs-dir", type=Path, help="default: NASLOOP_RUNS_DIR")
    return parser


def run_command(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    action: Callable[[argparse.Namespace], int],
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse `argv`, run `action`; a missing run, a bad setting, or one of `errors` is bad
    input: one line, exit code 2."""
    args = parser.parse_args(argv)
    bad: tuple[type[BaseException], ...] = (OSError, SettingsError, *errors)
    try:
        return action(args)
    except bad as exc:
        return bad_input(exc)
