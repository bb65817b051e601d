"""The Generator's prompt in the paper's style (`prompt_style: paper`): the task, the best and the
last network, the suggestion and the window, then the output template."""

from __future__ import annotations

from langchain_core.messages import BaseMessage

from agent.prompts.common import (
    TEXT_CHARS,
    accuracy,
    clip_block,
    code_block,
    messages,
    outcome_text,
    same_candidate,
    shape,
    task_section,
    window_section,
)
from agent.state import Candidate, TaskInfo, Triple

# --------------------------------------------------------------------------- Generator

_GENERATOR_SYSTEM = (
    "You are a neural network architect. You write small PyTorch image classifiers that reach "
    "high validation accuracy after a single epoch of training. "
    "You reply with code only: one complete Python module in one ```python block."
)


def generator_messages(
    task: TaskInfo,
    *,
    best: Candidate | None,
    last: Candidate | None,
    suggestion: str,
    window: list[Triple],
    constraints: str = "",
    drawn: bool = False,
) -> list[BaseMessage]:
    """The Generator's prompt: a system message and one human message.

    `drawn`: `best` is the network a tournament drew (`--parent tournament`): one of the best,
    named so, and the network to beat is "the network above".

    Sections: task, best network (if `best`), last attempt (if `last` is not the best: its outcome,
    and its code when it had some), suggestion (if non-empty), recent attempts (if `window`),
    constraints (if non-empty), then the required output, which is always there.
    """
    _, bchw = shape(task)
    classes = task.get("num_classes", 10)
    suggestion = suggestion if isinstance(suggestion, str) else ""
    constraints = constraints if isinstance(constraints, str) else ""
    best_accuracy = accuracy(best.get("result")) if best else None
    sections = [
        task_section(task)
        + "\nYour module must only define the network. Our program trains it: do not train, "
        "load data, download anything, or read or write files."
    ]
    best_code = (best.get("code") or "") if best else ""
    if best and best_code.strip():
        title = "One of the best networks so far" if drawn else "Best network so far"
        sections.append(
            f"## {title}\n"
            f"Outcome: {outcome_text(best.get('result') or {})}\n{code_block(best_code)}"
        )
    if last and not (best and same_candidate(last, best)):
        last_code = last.get("code") or ""
        outcome = outcome_text(last.get("result") or {}, best_accuracy)
        code_part = f"\n{code_block(last_code)}" if last_code.strip() else ""
        sections.append(f"## Last attempt\nOutcome: {outcome}{code_part}")
    if suggestion.strip():
        sections.append(
            f"## Suggestion for this attempt\n{clip_block(suggestion, TEXT_CHARS)}\n"
            "Apply this suggestion."
        )
    if window:
        sections.append(window_section(window))
    if constraints.strip():
        sections.append(f"## Constraints\n{clip_block(constraints, TEXT_CHARS)}")
    if best and best_code.strip():
        action = "Write a network that does better than the " + (
            "network above" if drawn else "best network above"
        )
    elif last:
        action = "Write a network that trains well, learning from the last attempt"
    else:
        action = "Write a network for this task"
    if suggestion.strip():
        action += ", applying the suggestion"
    sections.append(
        "## Your answer\n"
        f"{action}. Reply with exactly one ```python block that holds a complete module:\n"
        "- the imports it needs (torch, torch.nn, torch.nn.functional);\n"
        f"- `class Net(nn.Module)`; `__init__(self, num_classes={classes})` builds the layers;\n"
        f"- `forward(self, x)` that maps x of shape {bchw} to logits of shape (B, {classes});\n"
        "- a comment with the output shape after each layer, like `# (B, 32, 16, 16)`.\n"
        "Nothing else: no training code, no example usage, no explanation."
    )
    return messages(_GENERATOR_SYSTEM, sections)
