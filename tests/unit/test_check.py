"""The check step (agent/check/step.py) with fakes that misbehave like small models: a Generator that
repeats itself whatever it is asked, code with mechanical errors, fixes that lead back to code
already tried. Each mechanism is also run switched off, to show that it is what makes the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.archive.candidates import RunArchive, SeenProgram
from agent.check.step import MAX_FIXES, Attempt, Fixed, Iteration, check_and_train
from agent.check.novelty import REASKS
from sandbox.code import code_hash
from sandbox.result import new_result

A = "import torch.nn as nn\nclass Net(nn.Module):\n    width = 1\n"
A_REFORMATTED = "import torch.nn as nn\n\n\nclass Net(nn.Module):  # same network\n    width = 1\n"
B = "import torch.nn as nn\nclass Net(nn.Module):\n    width = 2\n"
NEEDS_IMPORT = "class Net(nn.Module):\n    width = 3\n"
FIXED_IMPORT = "import torch.nn as nn\n" + NEEDS_IMPORT
BAD_SHAPE = "import torch.nn as nn\nclass Net(nn.Module):\n    width = 4  # shape\n"
GOOD_SHAPE = "import torch.nn as nn\nclass Net(nn.Module):\n    width = 5\n"


@dataclass
class Log:
    """What happened: attempts archived, programs trained, re-ask notes."""

    attempts: list[Attempt] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def train(self, code: str) -> dict[str, Any]:
        self.trained.append(code)
        return dict(new_result("ok", "trained", code_hash(code), val_accuracy=0.5))


class FakeChecks:
    """Lint finds a missing `nn` import, the dry run a shape error; each has a mechanical fix."""

    def __init__(self, fixes: bool = True) -> None:
        self.fixes = fixes
        self.dry_runs: list[str] = []

    def lint(self, code: str) -> dict[str, Any] | None:
        if "import torch.nn as nn" not in code:
            return dict(new_result("runtime", "undefined name 'nn'", code_hash(code)))
        return None

    def dry_run(self, code: str) -> dict[str, Any]:
        self.dry_runs.append(code)
        if "# shape" in code:
            return dict(new_result("shape", "mat1 and mat2 shapes", code_hash(code)))
        return dict(new_result("ok", "dry run passed", code_hash(code)))

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
        if not self.fixes:
            return None
        if stage == "lint":
            return Fixed("imports", "import torch.nn as nn\n" + code, "+import torch.nn as nn")
        if failure["kind"] == "shape":
            return Fixed("in_features", GOOD_SHAPE, "-width = 4\n+width = 5")
        return None


def iteration(
    log: Log, seen: dict[str, SeenProgram], answers: list[str | None] | None, checks: Any = None
) -> Iteration:
    """One iteration: `answers` are the re-asks' replies (None: novelty off)."""
    replies = list(answers or [])

    def reask(n: int, note: str) -> str | None:
        log.notes.append(note)
        return replies[min(n - 1, len(replies) - 1)]

    return Iteration(
        seen=seen,
        train=log.train,
        record=log.attempts.append,
        reask=reask if answers is not None else None,
        checks=checks,
        iteration=7,
    )


def seen_once(
    code: str, kind: str = "runtime", message: str = "NameError: sqrt"
) -> dict[str, SeenProgram]:
    return {code_hash(code): SeenProgram(3, kind, message)}


class TestNovelty:
    def test_a_repeat_is_asked_again_and_the_new_program_trains(self) -> None:
        log = Log()
        final = check_and_train(A, iteration(log, seen_once(A), [B]))
        assert log.trained == [B]
        assert [a.source for a in log.attempts] == ["generator", "reask"]
        assert [a.result["kind"] for a in log.attempts] == ["duplicate", "ok"]
        assert final.result["kind"] == "ok" and final.code == B
        assert "identical to attempt 3, which failed with runtime: NameError: sqrt" in log.notes[0]

    def test_comments_and_layout_do_not_make_a_program_new(self) -> None:
        log = Log()
        check_and_train(A_REFORMATTED, iteration(log, seen_once(A), [B]))
        assert log.trained == [B]

    def test_a_generator_that_always_repeats_ends_as_duplicate_untrained(self) -> None:
        log = Log()
        final = check_and_train(A, iteration(log, seen_once(A, "ok", ""), [A, A, A]))
        assert log.trained == []
        assert len(log.notes) == REASKS  # the re-asks have their own budget of 2
        assert [a.source for a in log.attempts] == ["generator"] + ["reask"] * REASKS
        assert final.result["kind"] == "duplicate" and final.result["status"] == "error"
        assert "identical to attempt 3, which trained (ok)" in final.result["message"]
        assert f"all {REASKS + 1} asks" in final.result["message"]

    def test_a_reask_that_repeats_this_iterations_own_answer_is_caught(self) -> None:
        log = Log()
        seen = seen_once(A)
        check_and_train(A, iteration(log, seen, [A, B]))
        assert log.trained == [B]
        assert [a.result["kind"] for a in log.attempts] == ["duplicate", "duplicate", "ok"]

    def test_novelty_off_trains_the_repeat_again(self) -> None:
        log = Log()
        check_and_train(A, iteration(log, seen_once(A), None))
        assert log.trained == [A]

    def test_no_code_is_no_code_not_a_duplicate(self) -> None:
        log = Log()
        final = check_and_train(None, iteration(log, {}, [B]))
        assert final.result["kind"] == "no_code" and log.trained == [] and log.notes == []

    def test_seen_programs_survive_a_resume_through_the_archive(self, tmp_path: Path) -> None:
        first = RunArchive(tmp_path)
        failure = dict(new_result("runtime", "NameError: sqrt", code_hash(A)))
        first.record_attempt(0, 0, "generator", A, code_hash(A), failure, "lint")
        first.record_candidate(0, A, failure)
        resumed = RunArchive(tmp_path)  # a new process: nothing in memory
        seen = resumed.seen_before(1)
        assert seen[code_hash(A)] == SeenProgram(0, "runtime", "NameError: sqrt")
        assert resumed.seen_before(0) == {}  # an iteration re-run after a crash: not its own
        log = Log()
        check_and_train(A, iteration(log, seen, [B]))
        assert log.trained == [B]


class TestCascade:
    def test_a_missing_import_is_fixed_and_trained_in_the_same_iteration(self) -> None:
        log = Log()
        final = check_and_train(NEEDS_IMPORT, iteration(log, {}, [], FakeChecks()))
        assert log.trained == [FIXED_IMPORT]
        assert [(a.source, a.stage, a.result["kind"]) for a in log.attempts] == [
            ("generator", "lint", "runtime"),
            ("fix:imports", "train", "ok"),
        ]
        assert log.attempts[1].diff == "+import torch.nn as nn"
        assert final.result["kind"] == "ok" and final.code == FIXED_IMPORT

    def test_a_shape_error_is_found_by_the_dry_run_and_fixed(self) -> None:
        log, checks = Log(), FakeChecks()
        check_and_train(BAD_SHAPE, iteration(log, {}, [], checks))
        assert checks.dry_runs == [BAD_SHAPE, GOOD_SHAPE]
        assert log.trained == [GOOD_SHAPE]
        assert [a.stage for a in log.attempts] == ["dry_run", "train"]

    def test_two_errors_two_fixes(self) -> None:
        log = Log()
        code = "class Net(nn.Module):\n    width = 4  # shape\n"
        check_and_train(code, iteration(log, {}, [], FakeChecks()))
        assert [a.source for a in log.attempts] == ["generator", "fix:imports", "fix:in_features"]
        assert log.trained == [GOOD_SHAPE]

    def test_without_a_fix_the_check_failure_is_the_result_and_nothing_trains(self) -> None:
        log = Log()
        final = check_and_train(BAD_SHAPE, iteration(log, {}, [], FakeChecks(fixes=False)))
        assert log.trained == []
        assert final.result["kind"] == "shape" and len(log.attempts) == 1

    def test_auto_fix_off_goes_straight_to_training(self) -> None:
        log = Log()
        check_and_train(NEEDS_IMPORT, iteration(log, {}, [], None))
        assert log.trained == [NEEDS_IMPORT]
        assert [a.stage for a in log.attempts] == ["train"]

    def test_a_fix_that_leads_to_a_program_already_tried_is_not_trained_again(self) -> None:
        log = Log()
        final = check_and_train(
            BAD_SHAPE, iteration(log, seen_once(GOOD_SHAPE, "ok", ""), [], FakeChecks())
        )
        assert log.trained == []
        assert final.result["kind"] == "duplicate" and final.source == "fix:in_features"

    def test_fixes_are_bounded(self) -> None:
        class EndlessFixes(FakeChecks):
            def lint(self, code: str) -> dict[str, Any] | None:
                return dict(new_result("runtime", "still broken", code_hash(code)))

            def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
                return Fixed("imports", code + "x = 1\n", "+x = 1")

        log = Log()
        final = check_and_train(A, iteration(log, {}, [], EndlessFixes()))
        assert len(log.attempts) == MAX_FIXES + 1 and log.trained == []
        assert final.result["kind"] == "runtime"


def test_an_iteration_run_again_after_a_crash_rewrites_its_attempts(tmp_path: Path) -> None:
    from agent.check.step import attempt_recorder

    archive = RunArchive(tmp_path)
    first = attempt_recorder(archive, 4)
    for source in ("generator", "reask", "reask"):
        first(Attempt(source, A, dict(new_result("duplicate", "x", code_hash(A))), "novelty"))
    again = attempt_recorder(archive, 4)  # the node, run again from the start
    again(Attempt("generator", B, dict(new_result("ok", "trained", code_hash(B))), "train"))
    rows = archive.attempts(4)
    assert [(r["attempt"], r["source"], r["kind"]) for r in rows] == [(0, "generator", "ok")]
