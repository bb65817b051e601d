"""The end of `python -m agent.run`: a failing step says so in one line, the rest still runs,
and the search's archive is left as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agent.results.final_test
import agent.results.report
from agent.archive.candidates import RunArchive
from agent.search import finish
from agent.settings import Settings
from tests.helpers.archive import write_archive


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the sandbox went away\n  (second line of the cause)")


@pytest.mark.parametrize(
    ("target", "step", "module"),
    [
        (agent.results.final_test, "final test", "agent final_test"),
        (agent.results.report, "report", "agent report"),
    ],
)
def test_a_failing_step_is_one_line_and_loses_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: Any,
    step: str,
    module: str,
) -> None:
    run_dir = tmp_path / "r1"
    write_archive(run_dir)
    before = RunArchive(run_dir).rows()
    monkeypatch.setattr(
        agent.results.final_test, "run_final_test", lambda *a, **k: []
    )  # no sandbox
    name = "run_final_test" if step == "final test" else "write_report"
    monkeypatch.setattr(target, name, boom)
    done = finish(Settings(runs_dir=tmp_path, final_top_k=2), "r1")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nasloop: {step} failed (RuntimeError: the sandbox went away (")
    assert f"`python -m {module} r1`" in lines[0] and "archive is intact" in lines[0]
    assert RunArchive(run_dir).rows() == before
    assert done["export_dir"] == str(run_dir / "export")  # the other steps still ran
    assert (run_dir / "export" / "best_net.py").is_file()
    if step == "final test":
        assert done["final_test"] == [] and done["report_dir"] == str(run_dir / "report")
        assert (run_dir / "report" / "report.md").is_file()
    else:
        assert done["report_dir"] is None
