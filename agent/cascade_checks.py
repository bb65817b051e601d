"""The real checks behind the check step: pyflakes lint on the host (agent/lint.py), the dry run
in the sandbox (Evaluator.dry_run), and the host's mechanical fixes (agent/fixes.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.check import Fixed
from agent.fixes import (
    Fix,
    fix_example_usage,
    fix_linear_in_features,
    fix_missing_head,
    fix_missing_imports,
    fix_view_size,
)
from agent.lint import lint
from agent.state import TaskInfo
from sandbox.code import code_hash
from sandbox.evaluate import Evaluator
from sandbox.result import new_result


class SandboxChecks:
    """`agent.check.Checks` for a run: its evaluator's sandbox, its task's class count."""

    def __init__(self, evaluator: Evaluator, task: TaskInfo) -> None:
        self.evaluator = evaluator
        self.num_classes = task["num_classes"]

    def lint(self, code: str) -> dict[str, Any] | None:
        report = lint(code)
        if report["kind"] is None:
            return None
        result: dict[str, Any] = dict(
            new_result(report["kind"], report["message"], code_hash(code))
        )
        result["undefined_names"] = list(report["undefined_names"])
        return result

    def dry_run(self, code: str) -> dict[str, Any]:
        return dict(self.evaluator.dry_run(code))

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
        """The first fixer that applies, in the order of how often each mistake was seen."""
        fixers: list[tuple[str, Callable[[], Fix | None]]]
        if stage == "lint":
            names = failure.get("undefined_names") or []
            fixers = [("imports", lambda: fix_missing_imports(code, names))]
        else:
            fixers = [
                ("in_features", lambda: fix_linear_in_features(code, failure)),
                ("view_size", lambda: fix_view_size(code, failure)),
                ("head", lambda: fix_missing_head(code, failure, self.num_classes)),
                ("example_usage", lambda: fix_example_usage(code, failure)),
            ]
        for name, fixer in fixers:
            found = fixer()
            if found is not None:
                return Fixed(name, found.code, f"# {found.description}\n{found.diff}")
        return None
