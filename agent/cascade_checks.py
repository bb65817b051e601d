"""The real checks behind the check step: pyflakes lint on the host, the dry run in the sandbox,
and the host's mechanical fixes (agent/lint.py, sandbox Evaluator.dry_run, agent/fixes.py)."""

from __future__ import annotations

from typing import Any

from agent.check import Fixed
from agent.fixes import fix_linear_in_features, fix_missing_head, fix_missing_imports
from agent.lint import lint
from agent.state import TaskInfo
from sandbox.code import code_hash
from sandbox.evaluate import Evaluator
from sandbox.result import new_result


class SandboxChecks:
    """`agent.check.Checks` for a run: its evaluator's sandbox, its task's class count."""

    def __init__(self, evaluator: Evaluator, task: TaskInfo) -> None:
        self.evaluator = evaluator
        self.task = task

    def lint(self, code: str) -> dict[str, Any] | None:
        report = lint(code)
        if report["kind"] is None:
            return None
        result: dict[str, Any] = dict(new_result(report["kind"], report["message"], code_hash(code)))
        result["undefined_names"] = list(report["undefined_names"])
        return result

    def dry_run(self, code: str) -> dict[str, Any]:
        return dict(self.evaluator.dry_run(code))

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
        if stage == "lint":
            names = failure.get("undefined_names") or []
            found = fix_missing_imports(code, names) if names else None
            return Fixed("imports", found.code, found.diff) if found else None
        found = fix_linear_in_features(code, failure)  # type: ignore[arg-type]
        if found is not None:
            return Fixed("in_features", found.code, found.diff)
        found = fix_missing_head(code, str(failure.get("message") or ""))
        return Fixed("head", found.code, found.diff) if found else None
