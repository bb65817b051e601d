"""What a network's program may reach for, checked on the host before any sandbox starts.

A network needs tensors and arithmetic: torch (and torchvision's layers), math, the typing and
functional helpers, collections. A program that imports `os`, `subprocess` or `socket`, calls
`eval`, `exec`, `open` or `__import__`, or reaches for them through `getattr` or dunder
attributes (`().__class__.__mro__[1].__subclasses__()`, `torch.__builtins__`) has no business in
a search; the sandbox would contain it, but training it wastes a slot and it cannot be a result
worth keeping. So it is refused, as its own failure kind (`forbidden`), with one line that says
what it reached for. The sandbox stays the boundary: this is a filter, not a wall, and it is
read from the parse tree only (nothing is run).
"""

from __future__ import annotations

import ast
import sys

# Top-level modules a network's program may import: the tensor libraries and pure helpers.
ALLOWED_MODULES = frozenset(
    {
        *("torch", "torchvision", "numpy", "math", "cmath", "numbers", "random", "typing"),
        *("typing_extensions", "functools", "itertools", "operator", "collections"),
        *("dataclasses", "enum", "abc", "copy", "warnings", "__future__", "string", "re"),
        *("statistics", "fractions", "decimal", "contextlib", "time"),
    }
)
# Modules that are there to be imported and lead out of a network: the standard library's
# others, and the common third-party doors to the network. A module that is not installed at
# all is no door: its import fails in the sandbox, as an `import` failure the lint names.
REACHABLE = frozenset(sys.stdlib_module_names) | frozenset(
    {"requests", "urllib3", "httpx", "aiohttp", "paramiko", "psutil", "docker", "pexpect"}
)
# Builtins that run code, touch files or the interpreter's own machinery.
FORBIDDEN_NAMES = frozenset(
    {
        *("__import__", "eval", "exec", "compile", "open", "breakpoint", "input"),
        *("globals", "locals", "vars", "__builtins__", "__loader__", "__spec__", "memoryview"),
    }
)
# Attributes that lead out of the network: the interpreter's internals, or torch's own doors to
# processes, files and native code.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        *("__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__", "__mro__"),
        *("__code__", "__closure__", "__func__", "__self__", "__dict__", "__getattribute__"),
        *("__import__", "__loader__", "__spec__", "__reduce__", "__reduce_ex__", "f_globals"),
        *("f_locals", "f_back", "gi_frame", "tb_frame", "system", "popen", "Popen", "environ"),
        *("load_library", "cpp_extension", "hub", "multiprocessing", "_C"),
    }
)
# Functions that reach an attribute by a name computed at run time.
DYNAMIC_ACCESS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
ALLOWED_SUMMARY = "torch, torchvision, numpy, math, typing, functools, itertools, collections"


def forbidden_reach(tree: ast.Module) -> str | None:
    """One line naming the first thing `tree` reaches for that no network needs, in reading
    order (the innermost where two start at one place: `__import__` before its `.system`);
    None if none."""
    found: list[tuple[int, int, int, str]] = []
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:  # no recursion: a deep tree is bounded by the parse, not by the stack
        node, depth = stack.pop()
        reach = _reach(node)
        if reach is not None:
            line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
            found.append((line, col, -depth, reach))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    if not found:
        return None
    return (
        f"refused before training: the program {min(found)[3]}; a network needs only "
        f"{ALLOWED_SUMMARY} and the like (no files, processes, network or eval)"
    )


def _reach(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _refused_module(alias.name):
                return f"imports {alias.name}"
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0 and _refused_module(node.module or ""):
            return f"imports from {node.module}"
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
        return f"uses {node.id}"
    elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
        return f"reaches for the attribute {node.attr}"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _dynamic_access(node) if node.func.id in DYNAMIC_ACCESS else None
    return None


def _refused_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in REACHABLE and top not in ALLOWED_MODULES


def _dynamic_access(call: ast.Call) -> str | None:
    """`getattr(x, NAME)` and kin are fine with a plain literal name that is not forbidden, or
    on `self` with a name built from a literal prefix (`f"layer{i}"`), as nets build layers."""
    what = call.func.id if isinstance(call.func, ast.Name) else "getattr"
    if len(call.args) < 2 or any(isinstance(a, ast.Starred) for a in call.args[:2]):
        return f"reaches for an attribute named at run time through {what}"
    name = call.args[1]
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        if name.value in FORBIDDEN_ATTRIBUTES or name.value in FORBIDDEN_NAMES:
            return f"reaches for {name.value!r} through {what}"
        return None
    on_self = isinstance(call.args[0], ast.Name) and call.args[0].id == "self"
    if on_self and isinstance(name, ast.JoinedStr) and name.values:
        head = name.values[0]
        prefix = head.value if isinstance(head, ast.Constant) else ""
        if isinstance(prefix, str) and prefix and not prefix.startswith("_"):
            return None
    return f"reaches for an attribute named at run time through {what}"
