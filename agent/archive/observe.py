"""What the nodes tell the outside while they work: each LLM call into the archive, each
candidate's lineage, and the stage events the live view shows.

Kept apart from the nodes so that they stay about the search: a node calls one function here
after each LLM reply and at the start of each stage. Nothing here enters graph state.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.config import get_stream_writer

from agent.archive.calls import CallLog, Extracted, why_no_code
from agent.archive.candidates import RunArchive
from agent.archive.lineage import LineageLog, Parents
from agent.llm.client import Reply
from agent.replies.edits import Reading
from agent.state import Branch, Pending, Triple

Stage = str  # "generating", "checking", "training", "advising"


@cache
def call_log(run_dir: Path) -> CallLog:
    return CallLog(run_dir)


@cache
def lineage_log(run_dir: Path) -> LineageLog:
    return LineageLog(run_dir)


def worker_of(branch: Branch | None) -> int | None:
    """The worker a candidate runs on: its parallel round's slot, 1-based (None: classic loop)."""
    return None if branch is None else branch["slot"] + 1


def stage(name: Stage, iteration: int, branch: Branch | None = None, **extra: Any) -> None:
    """Tell the live view (stream mode "custom") what the search is doing now."""
    event = {"event": "stage", "stage": name, "iteration": iteration, **extra}
    event["worker"] = worker_of(branch)
    get_stream_writer()(event)


def generator_called(
    run_dir: Path,
    iteration: int,
    attempt: int,
    messages: Sequence[BaseMessage],
    reply: Reply,
    seconds: float,
    code: str | Reading | None,
    parents: Parents | None = None,
    /,
) -> None:
    """Archive one Generator call (attempt `attempt` of `iteration`) and, with `parents` (an
    iteration's first ask), its lineage. `code` is what was read: a module, None, or a
    `Reading` of edit blocks (whose error, when they did not apply, is why there is no code)."""
    code, unread = code if isinstance(code, Reading) else (code, None)
    if code is not None:
        extracted = Extracted(code=code)
    else:
        extracted = Extracted(none=unread or why_no_code(reply))
    call_log(run_dir).record(
        iteration=iteration,
        attempt=attempt,
        role="generator",
        messages=messages,
        reply=reply,
        seconds=seconds,
        extracted=extracted,
    )
    if parents is not None:  # re-asks within an iteration keep its first ask's parents
        lineage_log(run_dir).record(iteration, parents)


def improver_called(
    run_dir: Path,
    *,
    iteration: int,
    messages: Sequence[BaseMessage],
    reply: Reply,
    seconds: float,
    advice: dict[str, str] | None,
) -> None:
    """Archive the Improver's call under the iteration whose result it read."""
    if advice and advice.get("suggestion"):
        extracted = Extracted(
            problem=advice.get("problem", ""), suggestion=advice.get("suggestion", "")
        )
    elif reply.text.strip():
        extracted = Extracted(none="no suggestion could be read from the reply")
    else:
        extracted = Extracted(none="the reply was empty")
    call_log(run_dir).record(
        iteration=iteration,
        attempt=0,
        role="improver",
        messages=messages,
        reply=reply,
        seconds=seconds,
        extracted=extracted,
    )


def improvement_recorded(
    archive: RunArchive,
    iterations: list[int],
    closed: list[Triple],
    advice: Pending | None,
    tokens: int,
) -> None:
    """Archive what one Improver step made of its candidates (a parallel round's, in order):
    the triple each one closed, and the advice opened after them, whose tokens and source are
    one call's and so go on the last row only."""
    for n, iteration in enumerate(iterations):
        last = n == len(iterations) - 1
        archive.record_improvement(
            iteration,
            dict(closed[n]) if closed else None,
            advice["problem"] if advice else None,
            advice["suggestion"] if advice else None,
            tokens if last else 0,
            dict(advice) if advice and last else None,
        )
