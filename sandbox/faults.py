"""Infrastructure faults: what failed before a candidate's code was reached, and how to fix it.

The line between a candidate's failure and ours is the moment the runner starts importing the
candidate (it says so on its output first; see CANDIDATE_MARKER).
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


BACKEND_FIX = (
    "check the engine (`docker info`; start one with `sudo .ci/start-dockerd`), or choose "
    "another sandbox with NASLOOP_SANDBOX"
)


def fix_for(why: str) -> str:
    """The fix for a sandbox that failed before any candidate code, from what it said."""
    lowered = why.lower()
    if "no module named 'torch'" in lowered or "no module named torch" in lowered:
        return (
            "the sandbox's Python has no torch: run nasloop with the Python that has it, and "
            "for Docker rebuild the image from that Python (`python -m sandbox.image build`)"
        )
    if any(name in why for name in ("train_images", "train_labels", "val_images")) or (
        "/data" in why
    ):
        return (
            "the prepared dataset cannot be read in the sandbox: delete its directory under "
            "NASLOOP_DATA_DIR/prepared so it is prepared again"
        )
    if "no space left" in lowered:
        return "free disk space (the temp dir and Docker's data root)"
    if "job setup failed" in lowered:
        return "the warm worker cannot set up jobs: set NASLOOP_WARM_WORKER=false, or see its log"
    return (
        "check the sandbox with `python -m tools.train_candidate` (it trains the reference net "
        "and shows the whole log)"
    )
