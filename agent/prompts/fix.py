"""The LLM-side fixes' words: a repair request that points at the failing lines, and the note
that sends a hotter resample away from the error the last program hit.

The repair request is a conversation of its own (not the iteration's prompt plus a line): the
failing module, what failed and where it failed, the lines around that place numbered with the
failing one marked (agent/check/locate.py), the layers' output shapes up to the failure when the
forward pass traced them, then the same output contract as the short prompt. With
`--edit-mode diff|auto` the contract asks instead for edit blocks against the failing module
(agent/prompts/edit.py's format and an example cut from that module; `auto` reads a whole module
too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.check.locate import excerpt, locate, trace_lines
from agent.prompts.common import clip, code_block, shape, untrusted_block
from agent.prompts.edit import block_example, block_format
from agent.state import TaskInfo

MESSAGE_CHARS = 400  # of the error message: its head says what, the trace is shown apart
NOTE_CHARS = 240  # of the error a resample is told to avoid
TRACE_MARK = "; shape trace: "  # the runner's one-line trace, appended to a forward failure

_SYSTEM = (
    "You correct small PyTorch image classifiers that failed. "
    "You reply with one ```python block that holds the whole corrected module, and nothing else."
)
_EDIT_SYSTEM = (
    "You correct small PyTorch image classifiers that failed. You change the module you are "
    "shown with SEARCH/REPLACE edit blocks, as the request says."
)
# Where the failure was found (agent/check/step.py's stages), in words
_STAGES = {
    "lint": "a static check, before it ran",
    "dry_run": "its first forward pass on a dummy batch",
    "train": "training",
}


def error_line(failure: Mapping[str, Any], limit: int = MESSAGE_CHARS) -> str:
    """`kind: message`, the runner's one-line shape trace cut off (it is shown as a list)."""
    message = str(failure.get("message") or "").split(TRACE_MARK)[0]
    return f"{failure.get('kind', 'error')}: {clip(message, limit)}"


def repair_messages(
    task: TaskInfo, code: str, failure: Mapping[str, Any], stage: str, edit_mode: str = "full"
) -> list[BaseMessage]:
    """Ask for the module `code` with the error `failure` (found at `stage`) corrected: the
    whole module, or (edit mode diff, auto) edit blocks against it."""
    _, bchw = shape(task)
    classes = task.get("num_classes", 10)
    when = _STAGES.get(stage)
    sections = [
        f"Task: classify {task.get('dataset', 'the')} images into {classes} classes. "
        f"The input x has shape {bchw}.",
        f"This module failed{f' in {when}' if when else ''}:\n"
        + untrusted_block(error_line(failure)),
    ]
    where = locate(code, failure)
    if where is not None:
        sections.append(
            f"The error is at line {where.line}: {where.why}.\n{excerpt(code, where.line)}"
        )
    trace = trace_lines(failure)
    if trace:
        sections.append("Output shape of each layer, up to the failure:\n" + "\n".join(trace))
    sections.append(f"The whole module:\n{code_block(code)}")
    fix = "Correct the marked line, and whatever it depends on" if where else "Correct the error"
    keep = (
        f"{fix}; keep the rest of the network as it is. Where a Linear's input size is wrong, "
        "nn.LazyLinear works it out by itself."
    )
    if edit_mode in ("diff", "auto"):
        sections.append(_edit_contract(keep, code, classes, edit_mode))
        return [SystemMessage(content=_EDIT_SYSTEM), HumanMessage(content="\n\n".join(sections))]
    sections.append(
        f"{keep} Reply with the whole corrected module in one ```python block: the imports, "
        f"`class Net(nn.Module)` with `__init__(self, num_classes={classes})`, and "
        f"`forward(self, x)` returning logits of shape (B, {classes}). No training code, no "
        "example usage, no explanation."
    )
    return [SystemMessage(content=_SYSTEM), HumanMessage(content="\n\n".join(sections))]


def _edit_contract(keep: str, code: str, classes: object, mode: str) -> str:
    """The repair's contract in edit mode: blocks against the failing module shown above."""
    lines = [
        f"{keep} Reply with edit blocks that change the module above, and nothing else.",
        block_format(),
        "This block adds lines after one of its lines:",
        block_example(code),
        "The SEARCH lines must occur exactly once in the module: copy whole lines. Keep "
        f"`class Net` and `forward(self, x)` returning logits of shape (B, {classes}).",
    ]
    if mode == "auto":
        lines.append("Or reply with the whole corrected module in one ```python block.")
    return "\n".join(lines)


def resample_note(failure: Mapping[str, Any]) -> str:
    """What a resample is told: the error the last program hit, and to write one that avoids it."""
    if failure.get("kind") == "no_code":
        return (
            "The last reply written for this step held no ```python block, so there was no "
            "program to run. This time, write the module inside one ```python block."
        )
    return (
        f"The last program written for this step failed with {error_line(failure, NOTE_CHARS)}. "
        "Write a new network, not a copy of that one, that cannot hit this error."
    )
