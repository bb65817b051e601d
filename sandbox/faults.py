"""Infrastructure faults: what failed before a candidate's code was reached, and how to fix it.

The line between a candidate's failure and ours is the moment the runner starts importing the
candidate (it says so on its output first; see CANDIDATE_MARKER in sandbox/backends/base.py).
Anything that fails before that moment (the interpreter, torch, the dataset, the job's
directories, a warm worker's job setup, the Docker engine, the Ray cluster) is an
InfrastructureFault: never a result, never cached, never archived, never shown to an LLM. The
search stops on it with one line and a resume hint (agent.run exits with code 3).
"""

from __future__ import annotations


class InfrastructureFault(RuntimeError):
    """The sandbox could not evaluate a candidate at all; `cause` says why, `fix` what to do.

    str() is one line: "<cause>: <fix>" (or the cause alone when it already names the fix).
    """

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = " ".join(cause.split())
        self.fix = " ".join(fix.split())
        super().__init__(f"{self.cause}: {self.fix}" if self.fix else self.cause)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, cut to `limit` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
