"""Reading and editing candidate source at ast positions, for the mechanical fixes.

Everything here parses, never runs: a bounded parse, a few questions about the tree (which call
builds module "classifier.1", where imports end), and edits of one node's source span that keep
the rest of the text as the model wrote it.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass

from agent.check.static import MAX_SOURCE_BYTES


class ModulePaths:
    """Module path ("classifier.1") -> the call that builds that module, or None if unsure."""

    def __init__(self, tree: ast.Module) -> None:
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.built = {
            name: sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and callee(n) == name)
            for name in self.classes
        }

    def find(self, path: list[str]) -> ast.Call | None:
        net = self.classes.get("Net")
        return self._in_class(net, path, depth=0) if net is not None else None

    def _in_class(self, cls: ast.ClassDef, path: list[str], depth: int) -> ast.Call | None:
        init = method(cls, "__init__")
        if init is None or depth > 8:
            return None
        values = [
            node.value
            for node in ast.walk(init)
            if isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and any(is_self_attr(t, path[0]) for t in targets(node))
        ]
        if len(values) != 1:  # assigned twice (an if/else, a loop): which one ran is unknown
            return None
        return self._in_expr(values[0], path[1:], depth)

    def _in_expr(self, expr: ast.expr, rest: list[str], depth: int) -> ast.Call | None:
        if not isinstance(expr, ast.Call):
            return None
        if not rest:
            return expr
        name = callee(expr)
        if name in ("Sequential", "ModuleList"):
            items: list[ast.expr] = list(expr.args)
            if name == "ModuleList":
                only = expr.args[0] if len(expr.args) == 1 else None
                items = list(only.elts) if isinstance(only, ast.List | ast.Tuple) else []
            if any(isinstance(i, ast.Starred) for i in items) or not rest[0].isdigit():
                return None
            index = int(rest[0])
            return self._in_expr(items[index], rest[1:], depth) if index < len(items) else None
        if name in self.classes and self.built[name] == 1:  # one instance: its size is ours
            return self._in_class(self.classes[name], rest, depth + 1)
        return None


def parse_bounded(code: str) -> ast.Module | None:
    if len(code.encode("utf-8", errors="replace")) > MAX_SOURCE_BYTES or "\r" in code:
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def net_class(tree: ast.Module | None) -> ast.ClassDef | None:
    found = (
        [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net"] if tree else []
    )
    return found[-1] if found else None


def method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    found = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return found[-1] if found else None


def callee(call: ast.Call) -> str | None:
    func = call.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else None
    )


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def targets(node: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return list(node.targets) if isinstance(node, ast.Assign) else [node.target]


def is_self_attr(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def int_value(node: ast.expr) -> int | None:
    """An integer literal, or a product/sum of them (`16 * 4 * 4`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add):
        left, right = int_value(node.left), int_value(node.right)
        if left is None or right is None:
            return None
        return left * right if isinstance(node.op, ast.Mult) else left + right
    return None


def bound_at_top(tree: ast.Module) -> set[str]:
    """Names the module's top-level imports bind."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def import_line(tree: ast.Module) -> int:
    """The line after which new imports go: the end of the leading docstring and imports."""
    line = 0
    for i, node in enumerate(tree.body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not (docstring or isinstance(node, ast.Import | ast.ImportFrom)):
            break
        line = node.end_lineno or node.lineno
    return line


# --- editing -------------------------------------------------------------------------------


def insert_lines(code: str, after_line: int, new_lines: list[str]) -> str:
    lines = code.split("\n")
    return "\n".join([*lines[:after_line], *new_lines, *lines[after_line:]])


def replace_node(code: str, node: ast.expr, text: str) -> str:
    """`code` with `node`'s source span replaced (ast columns count UTF-8 bytes)."""
    lines = code.split("\n")
    assert node.end_lineno is not None and node.end_col_offset is not None
    start = _index(lines, node.lineno, node.col_offset)
    end = _index(lines, node.end_lineno, node.end_col_offset)
    return code[:start] + text + code[end:]


def _index(lines: list[str], lineno: int, col_bytes: int) -> int:
    before = sum(len(line) + 1 for line in lines[: lineno - 1])
    return before + len(lines[lineno - 1].encode("utf-8")[:col_bytes].decode("utf-8", "replace"))


def short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Fix:
    """A rewrite of a candidate's source on the host: the new module, why, and the diff."""

    code: str  # the whole fixed module
    description: str  # one line: what changed and why
    diff: str  # unified diff, candidate.py before -> after
    name: str = ""  # the fixer's name, as the archive records it (set by mechanical_fix)


def fix_from(before: str, after: str, description: str) -> Fix | None:
    """`after` as a Fix of `before`, with its diff (None: nothing changed, or it does not parse)."""
    if after == before or parse_bounded(after) is None:
        return None
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        "a/candidate.py",
        "b/candidate.py",
    )
    return Fix(code=after, description=short(description, 300), diff="".join(diff))
