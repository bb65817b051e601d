"""The real checks behind the check step: the static lint on the host, the dry run in the sandbox
(the executor's `dry_run`, queued with training), and the host's mechanical fixes, each named so
the archive says which one changed the code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.check.dead_layers import dead_layers_failure
from agent.check.mechanical import mechanical_fix
from agent.check.static import lint
from agent.check.step import Fixed
from agent.settings import Settings
from agent.state import TaskInfo
from sandbox.code import code_hash
from sandbox.result import new_result


class DryRunner(Protocol):
    def dry_run(self, code: str) -> Mapping[str, Any]: ...


class SandboxChecks:
    """`agent.check.step.Checks` for a run: its executor's sandbox, its task's class count."""

    def __init__(self, executor: DryRunner, task: TaskInfo, dead_layers: bool = True) -> None:
        self.executor = executor
        self.num_classes = task["num_classes"]
        self.dead_layers = dead_layers  # a passed dry run with dead layers fails (dead_layers.py)

    def lint(self, code: str) -> dict[str, Any] | None:
        report = lint(code)
        if report["kind"] is None:
            return None
        result: dict[str, Any] = dict(
            new_result(report["kind"], report["message"], code_hash(code))
        )
        result["undefined_names"] = list(report["undefined_names"])
        if report["line"] is not None:  # where a repair request points (agent/check/locate.py)
            result["line"] = report["line"]
        return result

    def dry_run(self, code: str) -> dict[str, Any]:
        dry = dict(self.executor.dry_run(code))
        return (dead_layers_failure(dry) if self.dead_layers else None) or dry

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
        """The first mechanical fix that is sure, with its name."""
        found = mechanical_fix(code, failure, self.num_classes)
        if found is None:
            return None
        return Fixed(found.name, found.code, f"# {found.description}\n{found.diff}")


def sandbox_checks(
    settings: Settings, task: TaskInfo, executor_for: Callable[[Settings], DryRunner]
) -> SandboxChecks | None:
    """The run's checks when auto-fix is on (in the sandbox of `executor_for(settings)`)."""
    if not settings.auto_fix:
        return None
    return SandboxChecks(executor_for(settings), task, settings.dead_layers)
