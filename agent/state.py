"""The search's graph state: small and constant in size, checkpointed after every step.

Only what the next prompt needs lives here (the best and the last candidate, the Improver's
suggestion, the K-window of triples); every candidate's code, result and timings go to the run
archive on disk. TypedDicts throughout: they survive a checkpoint round trip, tuples do not.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict


class Triple(TypedDict):
    """One improvement attempt: what was wrong, what was tried, and what came of it."""

    iteration: int  # the iteration whose result is the outcome
    problem: str
    suggestion: str
    outcome: str


class Pending(TypedDict):
    """A triple still waiting for its outcome: the next candidate's result fills it."""

    problem: str
    suggestion: str


class TaskInfo(TypedDict):
    """What the Generator must know about the data: never assume 3x32x32 or 10 classes."""

    dataset: str
    input_shape: list[int]  # [C, H, W]
    num_classes: int
    n_train: int


class Candidate(TypedDict):
    iteration: int
    code: str
    result: dict[str, Any]  # an EvalResult (or a no_code result) as a plain dict


class WindowUpdate(TypedDict):
    """Push `append` onto the window, then keep only the newest `keep` triples."""

    append: list[Triple]
    keep: int


def update_window(
    current: list[Triple] | None, update: WindowUpdate | list[Triple]
) -> list[Triple]:
    """The K-window reducer. A plain list replaces the window (used to initialise it)."""
    if isinstance(update, list):
        return list(update)
    window = [*(current or []), *update["append"]]
    return window[-update["keep"] :] if update["keep"] > 0 else []


class State(TypedDict):
    run_id: str
    task: TaskInfo
    iteration: int  # candidates finished so far; the next one gets this number
    code: NotRequired[str | None]  # the candidate between generate and train (None: no code)
    gen_tokens: NotRequired[int]  # tokens the Generator spent on `code`
    gen_seconds: NotRequired[float]  # and the time it took
    best: NotRequired[Candidate | None]  # best successful candidate so far
    last: NotRequired[Candidate | None]  # the most recent candidate, success or failure
    suggestion: NotRequired[str]  # the Improver's advice for the next candidate
    window: Annotated[list[Triple], update_window]
    pending: NotRequired[Pending | None]
    ok_count: NotRequired[int]  # successful candidates so far
    stop_reason: NotRequired[str | None]  # "budget" or "target" once the search is over
