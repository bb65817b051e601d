"""`python -m agent COMMAND`: the one door to the commands beside the search, as a user types it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from agent.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def agent(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command_with_what_it_does() -> None:
    done = agent("--help")
    assert done.returncode == 0
    for name, (_, what) in COMMANDS.items():
        assert any(line.split() and line.split()[0] == name for line in done.stdout.splitlines())
        assert what in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_leads_to_a_main(name: str) -> None:
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.main)


def test_an_unknown_command_is_one_line_and_exit_2() -> None:
    done = agent("shwo", "run1")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "nasloop: error: unknown command 'shwo'"


def test_show_on_a_run_that_does_not_exist_says_so_in_one_line(tmp_path: Path) -> None:
    done = agent("show", "no-such-run", "--runs-dir", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no-such-run" in done.stderr
    assert "python -m agent show" in agent("show", "--help").stdout  # its own usage line


def test_a_hyphen_spells_a_command_too(tmp_path: Path) -> None:
    done = agent("final-test", "--help")
    assert done.returncode == 0 and "python -m agent final_test" in done.stdout
