"""Stage 1 of the check: what is certainly wrong with a candidate, found without running it.

Parse and "defines Net" come from `static_problem` (the one static gate, shared
with the evaluator's precheck); on top of it, pyflakes used as a library finds names that are used
but never defined or imported (`sqrt` without `from math import sqrt`, `F` without its import), and
an import of a module the sandbox does not have. The candidate is only parsed: nothing of it runs.

Deliberate leniency: a `from x import *` hides which names are defined, so names it may provide
are not reported (pyflakes says "may be undefined"), and a name that is only ever used in code
that never runs still counts (it is a NameError waiting to happen, and the fix is the same).
Bounded: a source over MAX_SOURCE_BYTES, or one whose nesting exhausts the parser, is refused as
`syntax` with a one-line reason.
"""

from __future__ import annotations

import ast
import sys
from typing import Literal, TypedDict

from pyflakes import checker, messages

from sandbox.code import static_problem

LintKind = Literal["syntax", "no_net", "forbidden", "import", "runtime"]
MAX_SOURCE_BYTES = 64 * 1024
# What an `import` may name in the sandbox: the standard library, torch and what ships beside it
# (both sandbox images have numpy: the local one mounts this venv, the CUDA one is PyTorch's).
SANDBOX_PACKAGES = frozenset({"torch", "torchvision", "numpy"})
SANDBOX_MODULES = SANDBOX_PACKAGES | frozenset(sys.stdlib_module_names)
MAX_NAMES_SHOWN = 5
MAX_MESSAGE_CHARS = 300


class LintReport(TypedDict):
    kind: LintKind | None  # None: nothing found (which does not mean it will run)
    message: str  # one line an LLM can act on; "" when kind is None
    undefined_names: list[str]  # in order of first use, each once
    line: int | None  # where the first problem is, 1-based


def lint(code: str, available: frozenset[str] = SANDBOX_MODULES) -> LintReport:
    """The first certain problem of `code`: syntax, no Net, a bad import, or undefined names."""
    size = len(code.encode("utf-8", errors="replace"))
    if size > MAX_SOURCE_BYTES:
        limit = MAX_SOURCE_BYTES // 1024
        return _report("syntax", f"the module is {size // 1024} KiB; at most {limit} KiB is read")
    try:
        problem = static_problem(code)
        tree = ast.parse(code) if problem is None else None
    except (MemoryError, RecursionError, ValueError) as exc:
        return _report("syntax", f"the source cannot be parsed ({type(exc).__name__})")
    if problem is not None:
        kinds: dict[str, LintKind] = {"no_net": "no_net", "forbidden": "forbidden"}
        kind = kinds.get(problem[0], "syntax")
        return _report(kind, problem[1], line=_line_of(problem[1]))
    assert tree is not None
    if bad := _bad_import(tree, available):
        return bad
    try:
        found = checker.Checker(tree, filename="candidate.py").messages
    except (RecursionError, MemoryError):
        return _report("syntax", "the module is nested too deeply to be checked")
    undefined: dict[str, int] = {}
    for msg in sorted(found, key=lambda m: (m.lineno, m.col)):
        if isinstance(msg, messages.UndefinedName | messages.UndefinedLocal):
            undefined.setdefault(str(msg.message_args[0]), msg.lineno)
    if not undefined:
        return _report(None, "")
    names = list(undefined)
    shown = ", ".join(f"`{n}` (line {undefined[n]})" for n in names[:MAX_NAMES_SHOWN])
    if len(names) > MAX_NAMES_SHOWN:
        shown += f" and {len(names) - MAX_NAMES_SHOWN} more"
    what = "name" if len(names) == 1 else "names"
    message = f"NameError ahead: {what} {shown} used but never defined or imported"
    return _report("runtime", message, names, undefined[names[0]])


def _bad_import(tree: ast.Module, available: frozenset[str]) -> LintReport | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            message = "a relative import: the candidate is one file, import only installed modules"
            return _report("import", message, line=node.lineno)
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top not in available:
                shown = ", ".join(sorted(SANDBOX_PACKAGES & available))
                message = (
                    f"No module named '{top[:80]}' in the sandbox (line {node.lineno}): use only "
                    f"{shown} and the standard library"
                )
                return _report("import", message, line=node.lineno)
    return None


def _line_of(message: str) -> int | None:
    """The line number in static_problem's "... at line N ..." message, if any."""
    _, found, rest = message.partition(" at line ")
    digits = rest.split(":")[0].strip()
    return int(digits) if found and digits.isdigit() else None


def _report(
    kind: LintKind | None, message: str, names: list[str] | None = None, line: int | None = None
) -> LintReport:
    text = " ".join(message.split())  # one line, whatever the source line quoted in it held
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return LintReport(kind=kind, message=text, undefined_names=names or [], line=line)
