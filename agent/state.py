"""The search's graph state: small and constant in size, checkpointed after every step.

Only what the next prompt needs lives here (the best and the last candidate, the Improver's
suggestion, the K-window of triples); every candidate's code, result and timings go to the run
archive on disk. TypedDicts throughout: they survive a checkpoint round trip, tuples do not.

Parallel rounds (`--parallel N`, N > 1): a round is N candidates, iterations i .. i+N-1, each
generated and trained in its own branch (a LangGraph `Send` carrying a `Branch`). The branches
write only `round` (merged by iteration, so the order is defined whatever finishes first); the
Improver's node then joins the round: `iteration` advances by N, `best` and `ok_count` take in
every candidate, `last` becomes the round's focus (its best success, else its highest
iteration), and each candidate closes its own copy of the pending triple: the round's
suggestion, that candidate's outcome. So a round adds N triples to the window, in iteration
order, and the window still keeps only the newest K. One Improver call per round sees every
outcome. With N = 1 none of this is used: `round` stays empty and the loop is the classic one.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.messages import BaseMessage

from sandbox.result import EvalResult
from tools.train_candidate import TaskInfo as TaskInfo  # the task, as the tool reports it


class Triple(TypedDict):
    """One improvement attempt: what was wrong, what was tried, and what came of it."""

    iteration: int  # the iteration whose result is the outcome
    problem: str
    suggestion: str
    outcome: str
    count: NotRequired[int]  # times this (problem, suggestion) came in a row; absent means 1
    # Where the advice came from and whether the candidate followed it (agent/replies/
    # advice_moves.py); absent in triples made before these were recorded
    source: NotRequired[str]  # "improver", or "menu": the host replaced repeated/generic advice
    move: NotRequired[str]  # the menu move it was, by id ("batchnorm", "wider", ...)
    followed: NotRequired[bool | None]  # the candidate changed where it said (None: unchecked)


class Pending(TypedDict):
    """A triple still waiting for its outcome: the next candidate's result fills it."""

    problem: str
    suggestion: str
    source: NotRequired[str]  # "improver" or "menu"
    move: NotRequired[str]  # the menu move's id, when it is one
    expect: NotRequired[str]  # what the next network must show, e.g. "batchnorm>1"


class Candidate(TypedDict):
    iteration: int
    code: str
    result: EvalResult  # from the train_candidate tool (or a no_code result, made in `train`)
    calls: NotRequired[int]  # LLM calls its iteration made (Generator, re-asks, fixes)


class Tally(TypedDict):
    """The best/success bookkeeping: the best successful candidate and how many succeeded."""

    best: Candidate | None
    ok_count: int


def tally(counted: Tally, candidate: Candidate) -> Tally:
    """`counted` with one more finished candidate taken in: the one place that decides what a
    success is (status ok; over_limit is not) and what beats the best (higher val accuracy).
    Used by the one-at-a-time `train` and by a parallel round's join alike."""
    result = candidate["result"]
    if result["status"] != "ok":
        return counted
    best = counted["best"]
    accuracy = result["val_accuracy"]
    beats = best is None or (
        accuracy is not None and accuracy > (best["result"]["val_accuracy"] or 0.0)
    )
    return Tally(best=candidate if beats else best, ok_count=counted["ok_count"] + 1)


def best_accuracy(best: Candidate | None) -> float | None:
    return best["result"]["val_accuracy"] if best else None


class Branch(TypedDict):
    """Which candidate of a parallel round a `Send` branch is: slot 0 .. size-1.

    The branch's own iteration number is the payload's `iteration` (round start + slot); the
    slot picks the Generator's sampling temperature (see agent/nodes.py).
    """

    slot: int
    size: int  # candidates in this round


def merge_round(current: list[Candidate] | None, update: list[Candidate] | None) -> list[Candidate]:
    """The round reducer: candidates merged by iteration, in iteration order; None empties it.

    Keyed by iteration, so a branch that is re-run after a crash replaces its own entry.
    """
    if update is None:
        return []
    merged = {c["iteration"]: c for c in [*(current or []), *update]}
    return [merged[i] for i in sorted(merged)]


class WindowUpdate(TypedDict):
    """Push `append` onto the window, then keep only the newest `keep` triples."""

    append: list[Triple]
    keep: int


def push_triples(window: list[Triple], triples: list[Triple], keep: int) -> list[Triple]:
    """`window` with `triples` (one Improver call's worth) pushed on, the newest `keep` kept.

    A triple with the same problem and suggestion as the window's newest is merged into it (its
    count goes up, its outcome and iteration become the newer ones): a model stuck on one piece of
    advice fills one line of the window, not all K, and the prompt says how often it was tried.
    The triples of one parallel round are the same advice tried N times at once, each with its
    own outcome: they are kept apart (only the first may merge with what came before).
    """
    merged = list(window)
    for n, triple in enumerate(triples):
        newest = merged[-1] if merged and n == 0 else None
        if newest and (newest["problem"], newest["suggestion"]) == (
            triple["problem"],
            triple["suggestion"],
        ):
            # the newer one's outcome (and source, move, verdict), the two counts summed
            merged[-1] = {**triple, "count": newest.get("count", 1) + triple.get("count", 1)}
        else:
            merged.append(triple)
    return merged[-keep:] if keep > 0 else []


def update_window(
    current: list[Triple] | None, update: WindowUpdate | list[Triple]
) -> list[Triple]:
    """The K-window reducer. A plain list replaces the window (used to initialise it)."""
    if isinstance(update, list):
        return list(update)
    return push_triples(current or [], update["append"], update["keep"])


class State(TypedDict):
    run_id: str
    task: TaskInfo
    iteration: int  # candidates finished so far; the next one gets this number
    code: NotRequired[str | None]  # the candidate between generate and train (None: no code)
    # What `generate` built and `train` carries on with (re-asks and fixes reuse the prompt):
    prompt: NotRequired[list[BaseMessage] | None]  # the Generator's messages for `code`
    edit_base: NotRequired[str | None]  # the code its edit blocks applied to (None: whole)
    edit_error: NotRequired[str | None]  # why its reply's edit blocks did not apply (bad_edit)
    gen_tokens: NotRequired[int]  # tokens the Generator spent on `code`
    gen_seconds: NotRequired[float]  # and the time it took
    best: NotRequired[Candidate | None]  # best successful candidate so far
    last: NotRequired[Candidate | None]  # the most recent candidate (after a round: its focus)
    suggestion: NotRequired[str]  # the Improver's advice for the next candidate
    window: Annotated[list[Triple], update_window]
    pending: NotRequired[Pending | None]
    ok_count: NotRequired[int]  # successful candidates so far
    # LLM calls so far, every role: the one count the `--llm-calls` budget is checked against
    calls_spent: NotRequired[int]
    stop_reason: NotRequired[str | None]  # "budget", "target" or "llm_calls" once over
    # Parallel rounds only (absent or empty with --parallel 1):
    round_size: NotRequired[int]  # candidates in the next round (1: the classic loop)
    round: Annotated[list[Candidate], merge_round]  # this round's finished candidates
    branch: NotRequired[Branch]  # in a Send payload only: which slot of the round it is


def join_round(state: State) -> tuple[dict[str, Any], list[tuple[Candidate, float | None]]]:
    """Take in a finished parallel round, in iteration order.

    Returns the state update (`iteration` past the round, `ok_count` and `best` with every
    candidate counted, `last` = the round's focus: its best success, else its highest
    iteration; `round` emptied) and, for each candidate, the best accuracy after it: its
    outcome's "best so far", as the classic loop would have written it.
    """
    candidates = state["round"]  # merge_round keeps them in iteration order
    counted = Tally(best=state.get("best"), ok_count=state.get("ok_count", 0))
    batch: list[tuple[Candidate, float | None]] = []
    focus: Tally = Tally(best=None, ok_count=0)  # the round's own best success
    for candidate in candidates:
        counted = tally(counted, candidate)
        focus = tally(focus, candidate)
        batch.append((candidate, best_accuracy(counted["best"])))
    update = {
        "round": None,  # merge_round: empty it for the next round
        "iteration": candidates[-1]["iteration"] + 1,
        "last": focus["best"] or candidates[-1],
        "calls_spent": state.get("calls_spent", 0) + sum(c.get("calls", 0) for c in candidates),
        **counted,
    }
    return update, batch
