"""The Improver's prompt: one network and what happened when it trained, the memory, and a
JSON answer format; on a failure its only job is the fix."""

from __future__ import annotations

from langchain_core.messages import BaseMessage

from agent.prompts.common import (
    TEXT_CHARS,
    TRACEBACK_CHARS,
    TRACEBACK_LINES,
    accuracy,
    clip_block,
    code_block,
    messages,
    number,
    outcome_text,
    task_section,
    untrusted_block,
    window_section,
)
from agent.state import Candidate, TaskInfo, Triple
from sandbox.result import FAILURE_KINDS, EvalResult

# What usually fixes each kind of failure: a nudge for models that cannot infer it.
FAILURE_HINTS = {
    "syntax": "Find the line that does not parse and give the corrected line.",
    "no_net": "The module must define `class Net(nn.Module)` at top level.",
    "import": "Use only torch, torch.nn, torch.nn.functional and the Python standard library.",
    "shape": (
        "Follow the tensor shape through each layer and correct the layer whose input size is "
        "wrong (often the first nn.Linear after flattening)."
    ),
    "oom": "Make the network use less memory: fewer channels, earlier downsampling.",
    "timeout": "Make the network faster: fewer layers or channels, downsample earlier.",
    "nan": "Make training stable: BatchNorm after convolutions, plain ReLU, no manual scaling.",
    "runtime": "Fix the cause of the exception in the message.",
    "killed": "The process was killed: simplify the network and avoid unusual operations.",
    "no_code": (
        "The reply held no usable Python code: the next reply must be one complete ```python "
        "block that defines class Net."
    ),
    "duplicate": (
        "The Generator returned a network this run had already tried, even when asked again: "
        "suggest one clearly different change to the network (another layer type, width or "
        "depth), not a repeat of earlier advice."
    ),
    "dead_layers": (
        "Layers of the network are never used by forward (named in the message): call them in "
        "forward, in order, or remove them."
    ),
    "bad_edit": (
        "The Generator's edit blocks did not fit the code: each SEARCH part must copy lines of "
        "the code shown exactly, enough of them to occur once; say which lines to copy."
    ),
    "forbidden": (
        "The program reached for something no network needs (a module like os or subprocess, "
        "eval, exec, open): remove it; use only torch and plain Python arithmetic."
    ),
    "over_limit": (
        "The network trained but breaks a hardware limit (the numbers are in the message): make "
        "it smaller or cheaper (fewer channels or layers, downsample earlier), keep what made it "
        "accurate."
    ),
}


# --------------------------------------------------------------------------- Improver

_IMPROVER_SYSTEM = (
    "You review PyTorch image classifiers. You read one network and what happened when it was "
    "trained, and you give one short, concrete piece of advice. "
    "You reply with one JSON object only."
)

_JSON_FORMAT = (
    "## Answer format\n"
    "Reply with only this JSON object, one short sentence in each field:\n"
    '{"problem": "<what is wrong or what limits accuracy>", '
    '"suggestion": "<the one change to make>"}'
)


def traceback_tail(traceback: str) -> str:
    lines = [ln for ln in traceback.strip("\n").split("\n") if ln.strip()][-TRACEBACK_LINES:]
    tail = "\n".join(lines)
    return tail if len(tail) <= TRACEBACK_CHARS else tail[-TRACEBACK_CHARS:]


def result_section(result: EvalResult, iteration: object) -> tuple[str, bool]:
    """The last result in full (section text, whether it is a failure)."""
    if not isinstance(result, dict):
        result = {}
    kind = str(result.get("kind") or "unknown")
    if kind == "ok":
        text = outcome_text(result).removeprefix("ok: ")
        seconds = number(result.get("train_seconds"))
        if seconds is not None:
            text += f", trained in {seconds:.1f} s"
        return f"## Result of attempt {iteration}\nIt trained: {text}.", False
    message = clip_block(str(result.get("message") or "no message"), TEXT_CHARS)
    lines = [f"## Result of attempt {iteration}", f"It FAILED. Error kind: {kind}."]
    tail = traceback_tail(str(result.get("traceback") or ""))
    if kind not in FAILURE_KINDS:  # the search's own verdict (duplicate, no_code, ...): our words
        lines.append(message)
        return "\n".join(lines), True
    # the sandbox's: the message and traceback carry what the candidate raised and printed
    shown = f"{message}\n\nLast lines of the traceback:\n{tail}" if tail else message
    lines.append(untrusted_block(shown))
    return "\n".join(lines), True


def round_section(candidates: list[Candidate]) -> str:
    """Every attempt of a parallel round, one outcome line each, in iteration order."""
    lines = [f"## All {len(candidates)} attempts of this round (trained in parallel)"]
    for c in candidates:
        lines.append(f"- attempt {c.get('iteration', '?')}: {outcome_text(c.get('result') or {})}")
    return "\n".join(lines)


def moves_section(moves: list[str]) -> str:
    """The numbered menu of layer-level moves for the network shown."""
    lines = [
        "## Moves for this network",
        "Each changes one place of the network above; the next network is checked for it.",
    ]
    return "\n".join([*lines, *(f"{n}. {text}" for n, text in enumerate(moves, 1))])


def improver_messages(
    task: TaskInfo,
    *,
    last: Candidate,
    best: Candidate | None,
    window: list[Triple],
    round_candidates: list[Candidate] | None = None,
    moves: list[str] | None = None,
) -> list[BaseMessage]:
    """The Improver's prompt: a system message and one human message.

    On a failure its only job is the fix for that error; after a success, one small change
    likely to raise one-epoch validation accuracy: with `moves` (agent/replies/advice_moves.py's
    menu for this network), one of them by number or words, or another change that names a
    layer. The reply is a JSON object {"problem": ..., "suggestion": ...}. After a parallel
    round, `last` is the round's focus and `round_candidates` (all of the round, in iteration
    order) adds one outcome line each.
    """
    result = last.get("result") or {}
    iteration = last.get("iteration", "?")
    sections = [task_section(task)]
    code = last.get("code") or ""
    if code.strip():
        sections.append(f"## Network of attempt {iteration}\n{code_block(code)}")
    result_text, failed = result_section(result, iteration)
    sections.append(result_text)
    if round_candidates and len(round_candidates) > 1:
        sections.append(round_section(round_candidates))
    best_accuracy = accuracy(best.get("result")) if best else None
    if best_accuracy is not None:
        sections.append(f"## Best val accuracy so far\n{best_accuracy:.4f}")
    if window:
        sections.append(window_section(window))
    if failed:
        kind = str(result.get("kind") or "unknown")
        hint = FAILURE_HINTS.get(kind, "")
        sections.append(
            "## Your job\n"
            f"The network failed with a {kind} error. Your ONLY job is to fix this error. "
            "Say what causes it in `problem` and the exact code change that fixes it in "
            "`suggestion`. Do not suggest any other improvement."
            + (f"\nHint: {hint}" if hint else "")
        )
    elif moves:
        sections.append(moves_section(moves))
        sections.append(
            "## Your job\n"
            "The network trained. Choose ONE change likely to raise the validation accuracy "
            "after one epoch: a move from the list (its number or its words in `suggestion`), or "
            "another change that names the layer and its numbers. Never give a suggestion the "
            "recent attempts already hold. Keep everything else as it is."
        )
    else:
        sections.append(
            "## Your job\n"
            "The network trained. Propose ONE concrete, small change that is likely to raise the "
            "validation accuracy after one epoch (for example a layer, a width, normalisation, or "
            "where to downsample). Keep everything else as it is."
        )
    sections.append(_JSON_FORMAT)
    return messages(_IMPROVER_SYSTEM, sections)
