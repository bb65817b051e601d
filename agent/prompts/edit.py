"""The Generator's request for edit blocks (`--edit-mode diff|auto`), in both prompt styles.

With code to edit (the best network or the tournament's draw, which both styles show), the
style's system line and its closing contract (one whole module in a ```python block) give way to
a contract that asks for SEARCH/REPLACE blocks against that code (`code_from_reply` reads them).
Its example is cut from the code itself, so the example's SEARCH line really is in the code.
`auto` adds that a whole module is read too. With no code to edit, the messages stay as they
are: a whole module is asked for. The contract holds no blank line: a re-ask's note goes in
before the last paragraph.
"""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.settings import Settings
from agent.state import Candidate, TaskInfo

MARKERS = ("<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE")

_SYSTEM = {
    "short": "You write small PyTorch image classifiers. You change the network you are shown "
    "with SEARCH/REPLACE edit blocks, as the request says.",
    "paper": "You are a neural network architect. You improve small PyTorch image classifiers "
    "for high validation accuracy after a single epoch of training. You reply with edit blocks "
    "that change the network you are shown, as the request describes.",
}
_WHOLE = (
    "If you change most of the network, reply instead with the whole module in one ```python block."
)


def edit_base(best: Candidate | None, mode: str) -> str | None:
    """The code a reply's blocks apply to: the best network the prompt shows (None in `full`
    mode, or when the prompt shows no best network)."""
    code = (best.get("code") or "") if best else ""
    return code if mode != "full" and code.strip() else None


def _anchor(base: str) -> str:
    """A line of `base` to show in the example: a layer inside `Net`, else any indented line."""
    lines = [line.rstrip() for line in base.split("\n")]
    body = [ln for ln in lines if ln.startswith(" ") and not ln.lstrip().startswith(("#", "@"))]
    # a whole layer on one line (not the opening of a Sequential): adding lines after it is safe
    layers = [ln for ln in body if "nn." in ln and ln.endswith((")", "),"))]
    return (layers or body or [ln for ln in lines if ln.strip()] or ["import torch"])[0]


def block_example(base: str) -> str:
    """A block that adds lines after a real line of `base` (a repair prompt may show it too)."""
    anchor = _anchor(base)
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    new = f"{indent}# your new or changed lines"
    return "\n".join([MARKERS[0], anchor, MARKERS[1], anchor, new, MARKERS[2]])


def block_format() -> str:
    """The block's parts in words. Not a template: SmolLM2-135M copied a template's placeholder
    lines into its SEARCH parts (2 of 6 replies), so the only block shown is a real one."""
    return (
        f"An edit block is the line {MARKERS[0]}, then the lines to change copied exactly from "
        f"the network (indentation included), then the line {MARKERS[1]}, then the lines that "
        f"take their place (none, to delete them), then the line {MARKERS[2]}."
    )


def _short_contract(base: str, classes: object, mode: str, shown: str) -> str:
    lines = [
        f"Reply with edit blocks that change the {shown} above, and nothing else.",
        block_format(),
        "This block adds lines after one of its lines:",
        block_example(base),
        f"The SEARCH lines must occur exactly once in the {shown}: copy whole lines, enough "
        "of them. Use one block for each place you change. Keep `class Net`, its `self.head` and "
        f"`forward(self, x)` returning logits of shape (B, {classes}).",
    ]
    return "\n".join([*lines, _WHOLE] if mode == "auto" else lines)


def _paper_contract(base: str, classes: object, mode: str, suggested: bool, shown: str) -> str:
    action = f"Make the {shown} above do better" + (
        ", applying the suggestion" if suggested else ""
    )
    lines = [
        "## Your answer",
        f"{action}. Do not write the module again: change it with edit blocks, and reply with "
        "nothing else.",
        block_format(),
        f"- The SEARCH part is copied exactly from the {shown} above, indentation included, "
        "and occurs there exactly once.",
        "- Use one block for each place you change; the blocks are applied in order.",
        f"- The result still defines `class Net(nn.Module)` with `__init__(self, "
        f"num_classes={classes})` and `forward(self, x)` returning logits of shape (B, {classes}), "
        "with a comment with the output shape after each new layer.",
        "This block adds lines after one line of the network:",
        block_example(base),
        "No training code, no example usage, no explanation.",
    ]
    return "\n".join([*lines, _WHOLE] if mode == "auto" else lines)


def edit_request(
    messages: list[BaseMessage],
    base: str | None,
    settings: Settings,
    task: TaskInfo,
    suggestion: str,
    drawn: bool = False,
) -> list[BaseMessage]:
    """`messages` (either style's Generator prompt) asking for edit blocks against `base`; the
    messages as they are when there is nothing to edit. `drawn`: `base` is the network a
    tournament drew, so the contract calls it "the network", not "the best network"."""
    mode, style = settings.edit_mode, settings.prompt_style
    classes, suggested = task.get("num_classes", 10), bool(suggestion.strip())
    if base is None or mode == "full" or len(messages) != 2:
        return messages
    body = str(messages[1].content)
    cut = body.rfind("\n\n")  # the style's closing contract is its last paragraph
    head = body[:cut] if cut >= 0 else body
    shown = "network" if drawn else "best network"
    if style == "paper":
        contract = _paper_contract(base, classes, mode, suggested, shown)
    else:
        contract = _short_contract(base, classes, mode, shown)
    system = _SYSTEM["paper" if style == "paper" else "short"]
    return [SystemMessage(content=system), HumanMessage(content=f"{head}\n\n{contract}")]
