"""Static facts about candidate source, read without ever executing it."""

from __future__ import annotations

import ast
import hashlib


def normalise(source: str) -> str:
    """Source with comments, blank lines and formatting removed, when it parses.

    Two candidates that differ only in comments or layout are the same network: they share a hash,
    so the cache trains them once.
    """
    try:
        return ast.unparse(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError):
        return source.strip()


def code_hash(source: str) -> str:
    return hashlib.sha256(normalise(source).encode("utf-8")).hexdigest()


def static_problem(source: str) -> tuple[str, str] | None:
    """(kind, message) when the source certainly cannot work; None when only running it can tell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        text = (exc.text or "").strip()
        return "syntax", f"SyntaxError: {exc.msg} at {where}" + (f": {text}" if text else "")
    except (ValueError, RecursionError) as exc:
        return "syntax", f"the source cannot be parsed: {exc}"
    if not defines_net(tree):
        return "no_net", "the module defines no `Net` (expected class Net(nn.Module))"
    return None


def defines_net(tree: ast.AST) -> bool:
    """THE static "defines Net" gate: whether the module could bind the name `Net`.

    The one check of its kind: the Evaluator's precheck (`static_problem`, a `no_net` result
    without a sandbox job) and the Generator-reply reader (agent/code_reader.py, which picks the
    block that defines `Net`) both ask this. It errs towards yes: only running the code can tell
    more, so what might bind `Net` goes to the sandbox.
    """
    return any(_binds_net(node) for node in ast.walk(tree))


def _binds_net(node: ast.AST) -> bool:
    """Whether the node could bind the name `Net` (class, assignment, import, or a dynamic name)."""
    if isinstance(node, ast.ClassDef | ast.FunctionDef):
        return node.name == "Net"
    if isinstance(node, ast.Name):
        return node.id == "Net" and isinstance(node.ctx, ast.Store)
    if isinstance(node, ast.alias):
        return (node.asname or node.name) == "Net" or node.name == "*"
    # globals()["Net"] = ..., setattr(module, "Net", ...): give such code the benefit of the doubt
    return isinstance(node, ast.Constant) and node.value == "Net"
