"""Dead layers found before training: a passed dry run whose layers get no gradient fails, and the
plain case (the skeleton's `features` skipped by `forward`) is fixed on the host.

Why: a 0.5B coder given the short prompt's skeleton (agent/prompts/short.py) often writes a
`forward` that flattens the raw input (`x = x.view(-1, 28 * 28)`) straight into the head and never
calls `self.features`; the conv layers it adds there never run, so every "new" net it writes is
the same MLP (issue 25: 5 architectures among 14 trained nets, all 0.73-0.775). The dry run
(sandbox/inside/runner.py's dead_layers) does a forward and a backward pass (in eval mode) and names
the modules whose parameters get no gradient; here that becomes a `dead_layers` failure, which the
mechanical fix below, an LLM-side fix or the Improver can act on. `--no-dead-layers` lets such a
net train as it is.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from agent.check.source_edit import (
    Fix,
    fix_from,
    is_self_attr,
    method,
    net_class,
    parse_bounded,
    replace_node,
    short,
)
from sandbox.result import new_result

DEAD_LAYERS = "dead_layers"
NAMES_IN_MESSAGE = 8
FEATURES = "features"  # the skeleton's feature extractor (agent/prompts/short.py)


def dead_layers_failure(dry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `dead_layers` failure for a passed dry run that found layers no gradient reaches;
    None when it found none (or did not pass)."""
    dead = dry.get("dead_layers")
    if dry.get("status") != "ok" or not isinstance(dead, list) or not dead:
        return None
    names = ", ".join(str(n) for n in dead[:NAMES_IN_MESSAGE])
    more = f" and {len(dead) - NAMES_IN_MESSAGE} more" if len(dead) > NAMES_IN_MESSAGE else ""
    values = dry.get("dead_params")
    count = f" ({values:,} parameters get no gradient)" if isinstance(values, int) else ""
    message = (
        f"the forward pass never reaches {names}{more}{count}: call these layers in forward, "
        "or remove them"
    )
    result: dict[str, Any] = dict(
        new_result(DEAD_LAYERS, message, str(dry.get("code_hash", "")), params=dry.get("params"))
    )
    for key in ("dead_layers", "dead_params", "unused_lazy", "fingerprint"):
        if key in dry:
            result[key] = dry[key]
    return result


def fix_skipped_features(code: str, failure: Mapping[str, Any]) -> Fix | None:
    """Call `self.features` first in `Net.forward` when forward never does and the dead layers
    are all in it; a first statement that flattens the input for the head becomes `flatten(1)`.

    The skeleton's head starts with nn.Flatten and nn.LazyLinear, so the features' output fits it
    whatever its shape; a hand-sized Linear after a `view(-1, 784)` is left to the in_features
    fix, which the next dry run's shape trace makes sure of. None in any other case: a forward
    that reads `self.features` somewhere, dead layers outside it, no plain `forward(self, x)`.
    """
    dead = failure.get("dead_layers")
    if failure.get("kind") != DEAD_LAYERS or not isinstance(dead, list) or not dead:
        return None
    if not all(isinstance(n, str) and n.split(".")[0] == FEATURES for n in dead):
        return None
    tree = parse_bounded(code)
    net = net_class(tree) if tree is not None else None
    init = method(net, "__init__") if net is not None else None
    forward = method(net, "forward") if net is not None else None
    if init is None or forward is None or len(forward.args.args) < 2:
        return None
    if not _stores(init, FEATURES) or _reads(forward, FEATURES):
        return None
    x = forward.args.args[1].arg
    body = forward.body
    if body and _is_docstring(body[0]):
        body = body[1:]
    if not body or body[0].lineno == forward.lineno:  # `def forward(self, x): return ...`
        return None
    first = body[0]
    line = code.split("\n")[first.lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    fixed = code
    flatten = _flattens(first, x)
    if flatten is not None:
        fixed = replace_node(fixed, flatten, f"{x}.flatten(1)")
    lines = fixed.split("\n")
    lines.insert(first.lineno - 1, f"{indent}{x} = self.{FEATURES}({x})")
    fixed = "\n".join(lines)
    what = (
        f"Net.forward never called self.{FEATURES} ({short(', '.join(dead), 80)} got no gradient)"
    )
    how = f": `{x} = self.{FEATURES}({x})` added first"
    if flatten is not None:
        how += f", `{short(ast.get_source_segment(code, flatten) or '', 40)}` -> `{x}.flatten(1)`"
    return fix_from(code, fixed, what + how)


def _stores(function: ast.FunctionDef, attr: str) -> bool:
    return any(
        is_self_attr(n, attr) and isinstance(n.ctx, ast.Store)  # type: ignore[attr-defined]
        for n in ast.walk(function)
    )


def _reads(function: ast.FunctionDef, attr: str) -> bool:
    return any(
        is_self_attr(n, attr) and isinstance(n.ctx, ast.Load)  # type: ignore[attr-defined]
        for n in ast.walk(function)
    )


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def _flattens(statement: ast.stmt, x: str) -> ast.expr | None:
    """The call in `x = x.view(a, b)` / `x = x.reshape(a, b)`: the input flattened to (B, N)."""
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
        return None
    target, value = statement.targets[0], statement.value
    if not (isinstance(target, ast.Name) and target.id == x and isinstance(value, ast.Call)):
        return None
    func = value.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("view", "reshape")):
        return None
    if not (isinstance(func.value, ast.Name) and func.value.id == x and len(value.args) == 2):
        return None
    return value
