"""Infrastructure faults: the sandbox itself is broken, so no candidate can be blamed."""

from __future__ import annotations


class InfrastructureFault(RuntimeError):
    """Something failed before a candidate's code was reached (engine gone, interpreter or torch
    missing in the sandbox, data unreadable). Never a candidate's result: it stops the run.

    `cause` says what broke, `fix` what the user can do; str() is both on one line.
    """

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}: {fix}")
        self.cause = cause
        self.fix = fix
