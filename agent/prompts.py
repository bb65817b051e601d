"""The Generator's and the Improver's prompts, and the one-line outcome the memory keeps.

Written for small local models (down to ~135M parameters): short sentences, one job per prompt,
the output format stated last and shown, no section that says nothing. Each optional part of a
prompt (best code, last attempt, suggestion, window, constraints) appears exactly when the caller
gives it: ablations pass `best=None`, `window=[]` or `suggestion=""` and leave no trace.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.state import Candidate, TaskInfo, Triple
from sandbox.hardware import HardwareLimits
from sandbox.result import EvalResult

__all__ = [
    "ERROR_CHARS",
    "SUGGESTION_CHARS",
    "constraints_text",
    "generator_messages",
    "improver_messages",
    "outcome_text",
]

SUGGESTION_CHARS = 300  # how much of a suggestion/problem the memory keeps (the paper: ~300)
ERROR_CHARS = 200  # how much of an error message the memory keeps (the paper: ~200)

CODE_CHARS = 12_000  # longer code is shown as its head and tail
TEXT_CHARS = 1_500  # the current suggestion, constraints, an error message in full view
TRACEBACK_CHARS = 1_500  # the tail of a traceback the Improver sees
TRACEBACK_LINES = 12

# What usually fixes each kind of failure: a nudge for models that cannot infer it.
_FAILURE_HINTS = {
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
    "bad_edit": (
        "The Generator's edit blocks did not fit the code: each SEARCH part must copy lines of "
        "the code shown exactly, enough of them to occur once; say which lines to copy."
    ),
    "over_limit": (
        "The network trained but breaks a hardware limit (the numbers are in the message): make "
        "it smaller or cheaper (fewer channels or layers, downsample earlier), keep what made it "
        "accurate."
    ),
}


# --------------------------------------------------------------------------- small helpers


def _clip(text: object, limit: int) -> str:
    """One line, at most `limit` characters (an ellipsis marks a cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: max(limit - 3, 0)].rstrip() + "..."


def _clip_block(text: str, limit: int) -> str:
    """Multi-line text kept as it is up to `limit` characters, else cut at the end."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "\n[... cut ...]"


def _clip_code(code: str, limit: int = CODE_CHARS) -> str:
    """Code as it is, or its head and tail with a marker where the middle was cut."""
    code = code.strip("\n")
    if len(code) <= limit:
        return code
    head, tail = code[: limit * 2 // 3], code[-(limit // 3) :]
    cut = len(code) - len(head) - len(tail)
    return f"{head.rstrip()}\n# ... ({cut} characters cut) ...\n{tail.lstrip()}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(n: float, unit: str) -> str:
    """420_000 -> '0.42M params'; small counts in K or units so they do not read as 0.00M."""
    if n >= 1e4:
        return f"{n / 1e6:.2f}M {unit}"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K {unit}"
    return f"{n:.0f} {unit}"


def _accuracy(result: Any) -> float | None:
    if not isinstance(result, dict) or result.get("kind") != "ok":
        return None
    return _number(result.get("val_accuracy"))


def _shape(task: TaskInfo) -> tuple[str, str]:
    """('(C, H, W)', '(B, C, H, W)') from the task, whatever its input_shape holds."""
    dims = task.get("input_shape") or []
    inner = ", ".join(str(d) for d in dims) if isinstance(dims, list | tuple) else str(dims)
    return f"({inner})", f"(B, {inner})"


def _code_block(code: str) -> str:
    return f"```python\n{_clip_code(code)}\n```"


# --------------------------------------------------------------------------- outcome line


def outcome_text(result: EvalResult, best_accuracy: float | None = None) -> str:
    """One line for a triple's `outcome` and for prompts.

    ok: "ok: val accuracy 0.6123 (best so far 0.6500), 0.42M params, 12.3 MFLOPs"
    failure: "failed (shape): <message clipped to ERROR_CHARS>"
    """
    if not isinstance(result, dict):
        return "failed (unknown): no result"
    kind = str(result.get("kind") or "unknown")
    if kind != "ok":
        message = _clip(result.get("message") or "no message", ERROR_CHARS)
        return f"failed ({_clip(kind, 40)}): {message}"
    accuracy = _number(result.get("val_accuracy"))
    text = "ok: val accuracy " + ("unknown" if accuracy is None else f"{accuracy:.4f}")
    best = _number(best_accuracy)
    if best is not None:
        text += f" (best so far {best:.4f})"
    params, flops = _number(result.get("params")), _number(result.get("flops"))
    if params is not None:
        text += ", " + _count(params, "params")
    if flops is not None:
        text += f", {flops / 1e6:.1f} MFLOPs"
    return text


# --------------------------------------------------------------------------- hardware limits


def constraints_text(constraints: str, limits: HardwareLimits) -> str:
    """The user's constraints, then the hardware limits in words (either may be empty)."""
    parts = []
    if limits.max_params is not None:
        parts.append(f"at most {limits.max_params:,} parameters")
    if limits.max_flops is not None:
        parts.append(f"at most {_count(limits.max_flops, 'FLOPs')} for one image's forward pass")
    if limits.max_peak_memory_mb is not None:
        parts.append(f"at most {limits.max_peak_memory_mb:g} MiB peak memory in training")
    if limits.max_latency_ms is not None:
        parts.append(f"a forward pass of one image in at most {limits.max_latency_ms:g} ms")
    hard = (
        f"Hard limits: {'; '.join(parts)}. A network over any limit counts as a failure, "
        "whatever its accuracy."
        if parts
        else ""
    )
    return "\n".join(p for p in (constraints.strip(), hard) if p)


# --------------------------------------------------------------------------- shared sections


def _task_section(task: TaskInfo) -> str:
    chw, bchw = _shape(task)
    classes = task.get("num_classes", "?")
    lines = [
        "## Task",
        f"Dataset: {task.get('dataset', '?')} ({task.get('n_train', '?')} training images).",
        f"Each input image is a tensor of shape {chw} (channels, height, width).",
        f"A batch of inputs has shape {bchw}.",
        f"Number of classes: {classes}.",
        "Training: our program trains the network for ONE epoch only, with SGD and momentum.",
        "So a small network that learns fast beats a big one that learns slowly.",
    ]
    return "\n".join(lines)


def _window_section(window: list[Triple]) -> str:
    """The recent attempts, oldest first, one line each: problem -> suggestion -> outcome."""
    lines = ["## Recent attempts (oldest first)"]
    for n, triple in enumerate(window, 1):
        problem = _clip(triple.get("problem") or "-", SUGGESTION_CHARS)
        suggestion = _clip(triple.get("suggestion") or "-", SUGGESTION_CHARS)
        outcome = _clip(triple.get("outcome") or "-", SUGGESTION_CHARS)
        count = triple.get("count", 1)
        tried = f" (tried {count} times in a row, last outcome shown)" if count > 1 else ""
        lines.append(
            f"{n}. problem: {problem} -> suggestion: {suggestion}{tried} -> outcome: {outcome}"
        )
    return "\n".join(lines)


def _messages(system: str, sections: list[str]) -> list[BaseMessage]:
    body = "\n\n".join(s for s in sections if s.strip())
    return [SystemMessage(content=system), HumanMessage(content=body)]


# --------------------------------------------------------------------------- Generator

_GENERATOR_SYSTEM = (
    "You are a neural network architect. You write small PyTorch image classifiers that reach "
    "high validation accuracy after a single epoch of training. "
    "You reply with code only: one complete Python module in one ```python block."
)


def _same_candidate(a: Candidate, b: Candidate) -> bool:
    if a.get("iteration") == b.get("iteration"):
        return True
    return (a.get("code") or "").strip() == (b.get("code") or "").strip()


def generator_messages(
    task: TaskInfo,
    *,
    best: Candidate | None,
    last: Candidate | None,
    suggestion: str,
    window: list[Triple],
    constraints: str = "",
) -> list[BaseMessage]:
    """The Generator's prompt: a system message and one human message.

    Sections: task, best network (if `best`), last attempt (if `last` is not the best: its outcome,
    and its code when it had some), suggestion (if non-empty), recent attempts (if `window`),
    constraints (if non-empty), then the required output, which is always there.
    """
    _, bchw = _shape(task)
    classes = task.get("num_classes", 10)
    suggestion = suggestion if isinstance(suggestion, str) else ""
    constraints = constraints if isinstance(constraints, str) else ""
    best_accuracy = _accuracy(best.get("result")) if best else None
    sections = [
        _task_section(task)
        + "\nYour module must only define the network. Our program trains it: do not train, "
        "load data, download anything, or read or write files."
    ]
    best_code = (best.get("code") or "") if best else ""
    if best and best_code.strip():
        sections.append(
            "## Best network so far\n"
            f"Outcome: {outcome_text(best.get('result') or {})}\n{_code_block(best_code)}"
        )
    if last and not (best and _same_candidate(last, best)):
        last_code = last.get("code") or ""
        outcome = outcome_text(last.get("result") or {}, best_accuracy)
        code_part = f"\n{_code_block(last_code)}" if last_code.strip() else ""
        sections.append(f"## Last attempt\nOutcome: {outcome}{code_part}")
    if suggestion.strip():
        sections.append(
            f"## Suggestion for this attempt\n{_clip_block(suggestion, TEXT_CHARS)}\n"
            "Apply this suggestion."
        )
    if window:
        sections.append(_window_section(window))
    if constraints.strip():
        sections.append(f"## Constraints\n{_clip_block(constraints, TEXT_CHARS)}")
    if best and best_code.strip():
        action = "Write a network that does better than the best network above"
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
    return _messages(_GENERATOR_SYSTEM, sections)


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


def _traceback_tail(traceback: str) -> str:
    lines = [ln for ln in traceback.strip("\n").split("\n") if ln.strip()][-TRACEBACK_LINES:]
    tail = "\n".join(lines)
    return tail if len(tail) <= TRACEBACK_CHARS else tail[-TRACEBACK_CHARS:]


def _result_section(result: EvalResult, iteration: object) -> tuple[str, bool]:
    """The last result in full (section text, whether it is a failure)."""
    if not isinstance(result, dict):
        result = {}
    kind = str(result.get("kind") or "unknown")
    if kind == "ok":
        text = outcome_text(result).removeprefix("ok: ")
        seconds = _number(result.get("train_seconds"))
        if seconds is not None:
            text += f", trained in {seconds:.1f} s"
        return f"## Result of attempt {iteration}\nIt trained: {text}.", False
    message = _clip_block(str(result.get("message") or "no message"), TEXT_CHARS)
    lines = [f"## Result of attempt {iteration}", f"It FAILED. Error kind: {kind}.", message]
    tail = _traceback_tail(str(result.get("traceback") or ""))
    if tail:
        lines.append(f"Last lines of the traceback:\n```\n{tail}\n```")
    return "\n".join(lines), True


def _round_section(candidates: list[Candidate]) -> str:
    """Every attempt of a parallel round, one outcome line each, in iteration order."""
    lines = [f"## All {len(candidates)} attempts of this round (trained in parallel)"]
    for c in candidates:
        lines.append(f"- attempt {c.get('iteration', '?')}: {outcome_text(c.get('result') or {})}")
    return "\n".join(lines)


def improver_messages(
    task: TaskInfo,
    *,
    last: Candidate,
    best: Candidate | None,
    window: list[Triple],
    round_candidates: list[Candidate] | None = None,
) -> list[BaseMessage]:
    """The Improver's prompt: a system message and one human message.

    On a failure its only job is the fix for that error; after a success, one small change
    likely to raise one-epoch validation accuracy. The reply is a JSON object
    {"problem": ..., "suggestion": ...}. After a parallel round, `last` is the round's focus and
    `round_candidates` (all of the round, in iteration order) adds one outcome line each.
    """
    result = last.get("result") or {}
    iteration = last.get("iteration", "?")
    sections = [_task_section(task)]
    code = last.get("code") or ""
    if code.strip():
        sections.append(f"## Network of attempt {iteration}\n{_code_block(code)}")
    result_text, failed = _result_section(result, iteration)
    sections.append(result_text)
    if round_candidates and len(round_candidates) > 1:
        sections.append(_round_section(round_candidates))
    best_accuracy = _accuracy(best.get("result")) if best else None
    if best_accuracy is not None:
        sections.append(f"## Best val accuracy so far\n{best_accuracy:.4f}")
    if window:
        sections.append(_window_section(window))
    if failed:
        kind = str(result.get("kind") or "unknown")
        hint = _FAILURE_HINTS.get(kind, "")
        sections.append(
            "## Your job\n"
            f"The network failed with a {kind} error. Your ONLY job is to fix this error. "
            "Say what causes it in `problem` and the exact code change that fixes it in "
            "`suggestion`. Do not suggest any other improvement."
            + (f"\nHint: {hint}" if hint else "")
        )
    else:
        sections.append(
            "## Your job\n"
            "The network trained. Propose ONE concrete, small change that is likely to raise the "
            "validation accuracy after one epoch (for example a layer, a width, normalisation, or "
            "where to downsample). Keep everything else as it is."
        )
    sections.append(_JSON_FORMAT)
    return _messages(_IMPROVER_SYSTEM, sections)
