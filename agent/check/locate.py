"""Where in a candidate's source its failure happened, and the numbered lines around that place.

A repair request that only repeats the error message leaves a small model to find the fault
itself, and it does not (issue 14: two repair turns fixed 0 of 20). So the request points at a
line, found from what the failure already carries, best evidence first:

1. the shape trace's failed layer (the runner's `ShapeTrace`), a torch layer whose module path
   leads to the one call that builds it in `Net.__init__`: for a layer fed the wrong shape,
   that call holds the number to change (in_channels, in_features), not the line that calls it;
2. the innermost `File "candidate.py", line N` frame of the traceback (the runner compiles the
   module under that name; a cut tail may have lost it to torch's frames);
3. the lint report's line (`line`, set by the check's lint stage), or "line N" in the message
   (a SyntaxError's "at line 8", a bad import's "(line 3)").

The source is only parsed, never run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.check.source_edit import ModulePaths, parse_bounded
from sandbox.dry_run import failed_step, read_shape_trace
from sandbox.result import ShapeStep

CONTEXT_LINES = 3  # shown before and after the failing line
LINE_CHARS = 160  # a longer source line is cut: the excerpt is for reading, not for copying
TRACE_STEPS = 12  # the last layers of a shape trace shown; the failure is at its end
FRAME = re.compile(r'File "(?:[^"]*/)?candidate\.py", line (\d{1,6})')
LINE_IN_MESSAGE = re.compile(r"\bline (\d{1,6})\b")
MARK = ">>"  # marks the failing line in an excerpt


@dataclass(frozen=True)
class Location:
    line: int  # 1-based
    why: str  # how it was found, in words the Generator can follow


def locate(code: str, failure: Mapping[str, Any]) -> Location | None:
    """The source line `failure` points at, or None when nothing in it says where."""
    lines = code.split("\n")
    for found in (_layer(code, failure), _frame(failure), _reported(failure)):
        if found is not None and 1 <= found.line <= len(lines):
            return found
    return None


def excerpt(code: str, line: int, context: int = CONTEXT_LINES) -> str:
    """Lines `line` ± `context`, numbered, the failing one marked with `MARK`."""
    lines = code.split("\n")
    first, last = max(1, line - context), min(len(lines), line + context)
    width = len(str(last))
    shown = []
    for n in range(first, last + 1):
        text = lines[n - 1].rstrip()
        text = text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 3] + "..."
        shown.append(f"{MARK if n == line else '  '} {n:>{width}} | {text}")
    return "\n".join(shown)


def trace_lines(failure: Mapping[str, Any], limit: int = TRACE_STEPS) -> list[str]:
    """The shape trace, one layer a line (the last `limit`), or [] when the failure has none."""
    steps = read_shape_trace(failure.get("shape_trace")) or []
    shown = [_step_text(step) for step in steps[-limit:]]
    if len(steps) > limit:
        shown.insert(0, f"... ({len(steps) - limit} earlier calls not shown)")
    return shown


def _layer(code: str, failure: Mapping[str, Any]) -> Location | None:
    step = failed_step(read_shape_trace(failure.get("shape_trace")))
    tree = parse_bounded(code)
    if step is None or step["module"] in ("", "?") or tree is None:
        return None
    paths = ModulePaths(tree)
    if step["type"] in paths.classes:  # a block of the module's own: its forward is the place
        return None
    call = paths.find(step["module"].split("."))
    if call is None:
        return None
    fed = f" on input {tuple(step['in_shape'])}" if "in_shape" in step else ""
    why = f"layer `{step['module']}` ({step['type']}) is built there, and it failed{fed}"
    return Location(call.lineno, why)


def _frame(failure: Mapping[str, Any]) -> Location | None:
    frames = FRAME.findall(str(failure.get("traceback") or ""))
    if not frames:
        return None
    return Location(int(frames[-1]), "the innermost line of your module in the traceback")


def _reported(failure: Mapping[str, Any]) -> Location | None:
    line = failure.get("line")
    if type(line) is int:
        return Location(line, "the check found the problem there")
    found = LINE_IN_MESSAGE.search(str(failure.get("message") or ""))
    return Location(int(found.group(1)), "the error message names this line") if found else None


def _step_text(step: ShapeStep) -> str:
    # The twin of the runner's _step_text, which must travel alone (and imports torch, which the
    # orchestrator's prompt code need not load); a unit test keeps them equal.
    name = step["module"] or "(Net.forward)"
    if not step.get("failed"):
        out = "no tensor" if step["out"] is None else str(tuple(step["out"]))
        return f"{name} {step['type']} -> {out}"
    text = f"{name} {step['type']} FAILED"
    if "in_shape" in step:
        text += f" on input {tuple(step['in_shape'])}"
    if "in_features_expected" in step:
        text += f" (in_features must be {step['in_features_expected']})"
    return text
