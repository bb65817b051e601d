"""The Generator's short prompt (`prompt_style: short`, the default): built to prevent mistakes.

Measured with a 0.5B code model (issue 14): plain five-line prompts trained 5 of 12 samples and
our long prompt fewer; repair turns fixed none; a prompt that spelled out the head trained 6 of
12 at the first answer. Almost every failure was the size of the first Linear after flattening,
and `nn.LazyLinear` cannot get that wrong. So this prompt is the task in three lines, a skeleton
whose head infers its own input size, what the loop learned (best, last, suggestion, window), and
the output contract last. `prompt_style: paper` keeps agent/prompts/'s long prompt.
"""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.prompts.common import (
    HEAD,
    code_block,
    learned_sections,
    outcome_text,
    same_candidate,
    shape,
)
from agent.state import Candidate, TaskInfo, Triple

# The head every skeleton shows, and the one a mechanical fix adds when a module forgot it.

_SYSTEM = (
    "You write small PyTorch image classifiers. "
    "You reply with one ```python block that holds one complete module, and nothing else."
)


def skeleton(channels: int, classes: int, bchw: str) -> str:
    return (
        "```python\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, num_classes={classes}):\n"
        "        super().__init__()\n"
        "        self.features = nn.Sequential(\n"
        f"            nn.Conv2d({channels}, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),\n"
        "            nn.MaxPool2d(2),\n"
        "            # more layers here\n"
        "        )\n"
        f"        self.head = {HEAD}\n\n"
        f"    def forward(self, x):  # x: {bchw}\n"
        f"        return self.head(self.features(x))  # (B, {classes})\n```"
    )


def short_generator_messages(
    task: TaskInfo,
    *,
    best: Candidate | None,
    last: Candidate | None,
    suggestion: str,
    window: list[Triple],
    constraints: str = "",
    drawn: bool = False,
) -> list[BaseMessage]:
    """Task, skeleton (or the best network), what the loop learned, then the contract.

    The same signature as the paper style's `generator_messages`, on purpose: the node picks one
    by `prompt_style` and calls it the same way. `drawn`: `best` is the network a tournament drew
    (`--parent tournament`), one of the best, so the prompt does not call it the best."""
    _, bchw = shape(task)
    classes = task.get("num_classes", 10)
    dims = task.get("input_shape") or [3]
    sections = [
        f"Task: classify {task.get('dataset', 'the')} images into {classes} classes. "
        f"The input x has shape {bchw}. Our program trains the network for one epoch."
    ]
    best_code = (best.get("code") or "") if best else ""
    if best and best_code.strip():
        title = "One of the best networks so far" if drawn else "Best network so far"
        sections.append(
            f"{title} ({outcome_text(best.get('result') or {})}):\n{code_block(best_code)}"
        )
    else:
        sections.append(
            "Start from this skeleton. Keep its head: nn.LazyLinear works out the flattened "
            f"size by itself.\n{skeleton(int(dims[0]), int(classes), bchw)}"
        )
    if last and not (best and same_candidate(last, best)):
        code = last.get("code") or ""
        shown = f"\n{code_block(code)}" if code.strip() and not best_code.strip() else ""
        sections.append(f"Last attempt: {outcome_text(last.get('result') or {})}{shown}")
    sections += learned_sections(suggestion, window, constraints)
    sections.append(
        "Reply with one ```python block: the imports, `class Net(nn.Module)` with "
        f"`__init__(self, num_classes={classes})` and `self.head = {HEAD}`, and "
        f"`forward(self, x)` returning logits of shape (B, {classes}). "
        "No training code, no example usage, no explanation."
    )
    return [SystemMessage(content=_SYSTEM), HumanMessage(content="\n\n".join(sections))]


def with_note(messages: list[BaseMessage], note: str) -> list[BaseMessage]:
    """`messages` with `note` (why it is asked again) just before the contract, in any style."""
    *head, human = messages
    body = str(human.content)
    cut = body.rfind("\n\n")
    body = f"{body[:cut]}\n\n{note}{body[cut:]}" if cut >= 0 else f"{note}\n\n{body}"
    return [*head, HumanMessage(content=body)]
