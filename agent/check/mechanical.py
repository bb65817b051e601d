"""Mechanical fixes: a candidate's certain, mechanical mistake rewritten on the host, no LLM.

Small code models repeat the same few mistakes and do not repair them when told (issue 14): a
name used without its import, a Linear whose in_features is not the flattened size it receives,
a `view(-1, N)` with the wrong N, the prompt skeleton's `self.head` used but never defined. Each
fixer is a pure function of the source and of what the check found (the lint's report, or
the sandbox dry run's result with its shape trace); it returns a Fix (new code, a one-line
description, a unified diff) or None when it cannot fix the mistake *safely*: a fix that guesses
is worse than none, since the search would then train a network the model never wrote.

The candidate is only parsed, never run. Edits are made at ast positions, so they touch the
expression at fault and keep the model's own formatting everywhere else; every result parses.

API: `mechanical_fix(code, problem, num_classes=None)` picks the fixer for a LintReport or a dry
run's EvalResult; or call one: `fix_missing_imports(code, undefined_names)`,
`fix_linear_in_features(code, dry_run_result, lazy=False)`, `fix_missing_head(code, error,
num_classes=None)`, `fix_view_size(code, dry_run_result)`, `fix_example_usage(code, error)`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from agent.check.dead_layers import fix_skipped_features
from agent.check.source_edit import (
    Fix,
    ModulePaths,
    bound_at_top,
    callee,
    fix_from,
    import_line,
    insert_lines,
    int_value,
    is_main_guard,
    is_self_attr,
    keyword,
    method,
    net_class,
    parse_bounded,
    replace_node,
    short,
)
from agent.check.static import lint
from agent.prompts.common import HEAD_TEMPLATE
from sandbox.dry_run import failed_step, read_shape_trace

# Names a standard import provides, and the import that provides each.
MODULE_IMPORTS = {
    "torch": "import torch",
    "nn": "import torch.nn as nn",
    "F": "import torch.nn.functional as F",
    "optim": "import torch.optim as optim",
    "init": "import torch.nn.init as init",
    "torchvision": "import torchvision",
    "math": "import math",
    "np": "import numpy as np",
    "numpy": "import numpy",
    "collections": "import collections",
    "functools": "import functools",
    "itertools": "import itertools",
}
FROM_IMPORTS = {
    "math": (
        "sqrt", "pi", "log", "log2", "log10", "exp", "ceil", "floor", "cos", "sin", "tan",
        "tanh", "inf", "prod", "isqrt", "gcd",
    ),
    "typing": ("Any", "Callable", "Dict", "List", "Optional", "Sequence", "Tuple", "Union"),
    "collections": ("OrderedDict", "defaultdict", "deque", "namedtuple"),
    "functools": ("partial", "reduce"),
    "torch": ("Tensor",),
}  # fmt: skip
PROVIDER = {name: module for module, names in FROM_IMPORTS.items() for name in names}
CLASS_COUNT_PARAMS = ("num_classes", "n_classes", "classes", "num_labels", "num_outputs")
NAME_ERROR = re.compile(r"NameError: name '(\w{1,80})' is not defined")
VIEW_ERROR = re.compile(r"shape '\[(-?\d+), (\d+)\]' is invalid for input of size (\d+)")


def mechanical_fix(
    code: str, problem: Mapping[str, Any], num_classes: int | None = None
) -> Fix | None:
    """The first fixer that can fix `problem` (a LintReport, or a dry run's EvalResult), its
    name on the Fix. A NameError the lint could not see (a name hidden behind a star import)
    counts as an undefined name too. None when no fixer is sure.
    """
    listed = problem.get("undefined_names")
    names = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    names += NAME_ERROR.findall(str(problem.get("message", "")))
    fixers: list[tuple[str, Callable[[], Fix | None]]] = [
        ("example_usage", lambda: fix_example_usage(code, problem)),
        ("skipped_features", lambda: fix_skipped_features(code, problem)),
    ]
    if names:
        fixers.insert(0, ("imports", lambda: fix_missing_imports(code, names)))
    else:
        fixers += [
            ("view_size", lambda: fix_view_size(code, problem)),
            ("in_features", lambda: fix_linear_in_features(code, problem)),
            ("head", lambda: fix_missing_head(code, problem, num_classes)),
        ]
    for name, fixer in fixers:
        found = fixer()
        if found is not None:
            return replace(found, name=name)
    return None


def fix_missing_imports(code: str, undefined_names: Iterable[str]) -> Fix | None:
    """Add the standard import for each undefined name; None unless every one can be provided."""
    names = list(dict.fromkeys(undefined_names))
    tree = parse_bounded(code)
    if (
        tree is None
        or not names
        or any(n not in MODULE_IMPORTS and n not in PROVIDER for n in names)
    ):
        return None
    lines = [MODULE_IMPORTS[n] for n in names if n in MODULE_IMPORTS]
    for module in FROM_IMPORTS:
        wanted = [n for n in names if n not in MODULE_IMPORTS and PROVIDER.get(n) == module]
        if wanted:
            lines.append(f"from {module} import {', '.join(wanted)}")
    fixed = insert_lines(code, import_line(tree), lines)
    if set(lint(fixed)["undefined_names"]) & set(names):
        return None  # e.g. a name used before a local assignment: no import helps
    added = " and ".join(f"`{line}`" for line in lines)
    return fix_from(code, fixed, f"added {added} for names used without an import")


def fix_linear_in_features(
    code: str, dry_run_result: Mapping[str, Any], lazy: bool = False
) -> Fix | None:
    """Set the in_features of the Linear the shape trace proves wrong (or make it a LazyLinear).

    The Linear is found by its module path ("classifier.1") from Net's `__init__`, through
    `nn.Sequential(...)` positions, `nn.ModuleList([...])` and submodules of classes defined once
    in the module; None when any step of that path is ambiguous.
    """
    step = failed_step(read_shape_trace(dry_run_result.get("shape_trace")))
    if step is None or step["type"] != "Linear" or "in_features_expected" not in step:
        return None
    path = step["module"]
    tree = parse_bounded(code)
    if tree is None or path in ("", "?"):
        return None
    call = ModulePaths(tree).find(path.split("."))
    if call is None or callee(call) != "Linear":
        return None
    old = call.args[0] if call.args else keyword(call, "in_features")
    if old is None or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    expected = step["in_features_expected"]
    before = ast.get_source_segment(code, call) or "Linear(...)"
    if lazy:
        rest = [ast.get_source_segment(code, a) for a in call.args[1:]]
        rest += [ast.get_source_segment(code, k) for k in call.keywords if k.arg != "in_features"]
        func = ast.get_source_segment(code, call.func) or "nn.Linear"
        new_call = f"{func[: -len('Linear')]}LazyLinear({', '.join(r or '' for r in rest)})"
        fixed = replace_node(code, call, new_call)
    else:
        fixed = replace_node(code, old, str(expected))
    shape = tuple(step.get("in_shape", [])) or f"(B, {expected})"
    after = "a LazyLinear" if lazy else f"in_features {expected}"
    what = f"`{path}`: `{short(before)}` -> {after}, as the shape trace shows it receives {shape}"
    return fix_from(code, fixed, what)


def fix_missing_head(
    code: str, error: Mapping[str, Any] | str, num_classes: int | None = None
) -> Fix | None:
    """Define the prompt skeleton's `self.head` at the end of `Net.__init__` when it was forgotten.

    Only for an AttributeError about `head`, in a Net whose code reads `self.head` and never
    assigns it. The head's class count is `__init__`'s own parameter (num_classes, ...), else
    `num_classes` when given, else there is no safe fix.
    """
    message = error if isinstance(error, str) else str(error.get("message", ""))
    if re.search(r"has no attribute '(head)'", message) is None:
        return None
    tree = parse_bounded(code)
    net = net_class(tree) if tree is not None else None
    init = method(net, "__init__") if net is not None else None
    if tree is None or net is None or init is None or not init.body:
        return None
    uses = [n for n in ast.walk(net) if isinstance(n, ast.Attribute) and is_self_attr(n, "head")]
    if not uses or any(isinstance(n.ctx, ast.Store | ast.Del) for n in uses):
        return None
    last = init.body[-1]
    if last.lineno == init.lineno or isinstance(last, ast.Return | ast.Raise):
        return None
    params = [a.arg for a in [*init.args.args[1:], *init.args.kwonlyargs]]
    classes = next((p for p in CLASS_COUNT_PARAMS if p in params), None)
    if classes is None and num_classes is None:
        return None
    imports_first = "nn" not in bound_at_top(tree)
    body_line = code.split("\n")[init.body[0].lineno - 1]
    indent = body_line[: len(body_line) - len(body_line.lstrip())]
    head = HEAD_TEMPLATE.format(nn="nn.", classes=classes or num_classes)
    fixed = insert_lines(code, last.end_lineno or last.lineno, [f"{indent}self.head = {head}"])
    if imports_first:
        fixed = insert_lines(fixed, import_line(tree), [MODULE_IMPORTS["nn"]])
    return fix_from(code, fixed, f"defined the missing `self.head` in Net.__init__: {head}")


def fix_view_size(code: str, dry_run_result: Mapping[str, Any]) -> Fix | None:
    """Replace `x.view(-1, N)` / `x.reshape(-1, N)` with `x.flatten(1)` when N is proven wrong.

    Only when the dry run failed in Net.forward's own code with torch's "shape '[-1, N]' is
    invalid for input of size M", and Net.forward has exactly one such call with that N.
    """
    step = failed_step(read_shape_trace(dry_run_result.get("shape_trace")))
    found = VIEW_ERROR.search(str(dry_run_result.get("message", "")))
    tree = parse_bounded(code)
    if step is None or step["module"] != "" or found is None or tree is None:
        return None
    size = int(found.group(2))
    net = net_class(tree)
    forward = method(net, "forward") if net is not None else None
    if forward is None:
        return None
    calls = [
        node
        for node in ast.walk(forward)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("view", "reshape")
        and len(node.args) == 2
        and int_value(node.args[1]) == size
    ]
    if len(calls) != 1:
        return None
    call = calls[0]
    assert isinstance(call.func, ast.Attribute)
    tensor = ast.get_source_segment(code, call.func.value)
    before = ast.get_source_segment(code, call)
    if tensor is None or before is None:
        return None
    fixed = replace_node(code, call, f"{tensor}.flatten(1)")
    values = int(found.group(3))
    why = f"{size} does not divide the {values} values of the dry run's batch"
    return fix_from(code, fixed, f"`{short(before)}` -> `{tensor}.flatten(1)`: {why}")


def fix_example_usage(code: str, error: Mapping[str, Any] | str) -> Fix | None:
    """Remove the "example usage" after the last class or function when it failed at import.

    The prompt asks for a module, but small models append a demo (`model = Net()`, a
    `torch.load("path_to_your_model.pth")`) that runs, and fails, when the sandbox imports the
    candidate. Only when the failure happened during import, and nothing before the tail uses a
    name the tail defines.
    """
    message = error if isinstance(error, str) else str(error.get("message", ""))
    tree = parse_bounded(code)
    if "(during import)" not in message or tree is None:
        return None
    definitions = (
        ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Import | ast.ImportFrom
    )
    last = max((i for i, n in enumerate(tree.body) if isinstance(n, definitions)), default=-1)
    head, tail = tree.body[: last + 1], tree.body[last + 1 :]
    runs = [n for n in tail if not is_main_guard(n)]  # `if __name__ == "__main__"` never runs
    if last < 0 or not runs or any(isinstance(n, definitions) for n in tail):
        return None
    bound = {
        n.id
        for s in tail
        for n in ast.walk(s)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    used = {n.id for s in head for n in ast.walk(s) if isinstance(n, ast.Name)}
    if bound & used:
        return None
    lines = code.split("\n")
    start = tail[0].lineno - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):  # its "# Example usage" too
        start -= 1
    fixed = "\n".join(lines[:start]).rstrip("\n") + "\n"
    first = short(lines[tail[0].lineno - 1], 60)
    return fix_from(
        code, fixed, f"removed the example usage after the last definition (`{first}` ...)"
    )
