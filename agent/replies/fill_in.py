"""The fill-in reply (`--fill-in`): the Generator writes only the layers of `self.features`, and
the host puts them into a fixed skeleton. Read with `ast`, never run.

The skeleton (`fill_in_module`) is `class Net(nn.Module)` whose `__init__` builds
`self.features = nn.Sequential(<the layers>)` and the fixed head `HEAD` (global average pooling,
flatten, `nn.LazyLinear(num_classes)`), and whose `forward` calls both: every layer written is
used (the dead-layer check has nothing to find), the head fits any feature map, and the number of
classes is the task's. The host writes each layer as `ast.unparse` gives it, one per line.

How a reply is read (`read_reply`): as without fill-in first (agent/replies/edits.py); a module
that defines `Net` is kept as it is. Otherwise its layers, from its fenced blocks (the last
first), then from its bare text: the arguments of a lone `nn.Sequential(...)` (also as
`self.features = nn.Sequential(...)`), or lines of layer calls separated by commas (a trailing
comma, imports, comments and a common indentation tolerated). Each must be a call (`nn.ReLU()`,
not `nn.ReLU`); anything else in the block, or more than `MAX_LAYERS`, and the block holds no
layers. A reply with no layers anywhere reads as it did without fill-in.

A head the model wrote anyway is cut off (`without_head`): told "no nn.Flatten, no nn.Linear",
the 0.5B coder still ended its layers with `nn.Flatten(), nn.LazyLinear(10)` in 3 of its first 4
fill-in replies (bench run probe-0.5b), and the skeleton's head then pooled a (B, 10) matrix into
one row. Everything from the first Flatten or Linear on is the head's job, which the skeleton does.
"""

from __future__ import annotations

import ast
import re
import textwrap

from agent.replies.edits import Reading, code_from_reply
from agent.state import TaskInfo
from sandbox.code import defines_net, parse_bounds

HEAD = "nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(num_classes))"
MAX_LAYERS = 64
HEAD_LAYERS = ("Flatten", "Linear", "LazyLinear")  # where a written head starts
MAX_REPLY_CHARS = 100_000
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+.-]*)")
_CODE_TAGS = {"", "python", "py", "python3", "pytorch", "torch"}


def fill_in_module(layers: list[str], classes: int) -> str:
    """The skeleton with `layers` (call texts, or comment lines) as its features' layers."""
    lines = "".join(
        f"            {layer}\n" if layer.startswith("#") else f"            {layer},\n"
        for layer in layers
    )
    return (
        "import torch\nimport torch.nn as nn\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, num_classes={classes}):\n"
        "        super().__init__()\n"
        f"        self.features = nn.Sequential(\n{lines}        )\n"
        f"        self.head = {HEAD}\n\n"
        "    def forward(self, x):\n"
        "        return self.head(self.features(x))\n"
    )


def read_reply(text: str, base: str | None, mode: str, fill_in: TaskInfo | None) -> Reading:
    """A Generator reply read as `code_from_reply` reads it; with `fill_in` (the task), a reply
    that holds no module defining `Net` but holds layers becomes the skeleton with them."""
    read = code_from_reply(text, base, mode)
    if fill_in is None or (read.code is not None and _defines_net(read.code)):
        return read
    layers = reply_layers(text)
    if layers is None:
        return read
    layers = without_head(layers)
    return Reading(fill_in_module(layers, int(fill_in.get("num_classes") or 10)), None)


def without_head(layers: list[str]) -> list[str]:
    """The layers before the first Flatten or Linear (the skeleton's head pools and classifies);
    all of them when that would leave none (the dry run then says what is wrong)."""
    names = [re.match(r"(?:\w+\.)*(\w+)\(", layer) for layer in layers]
    cut = next(
        (i for i, m in enumerate(names) if m is not None and m.group(1) in HEAD_LAYERS),
        len(layers),
    )
    return layers[:cut] if cut > 0 else layers


def reply_layers(text: str) -> list[str] | None:
    """The layers a reply writes, one call text each (None: it writes none we can read)."""
    if not isinstance(text, str) or len(text) > MAX_REPLY_CHARS:
        return None
    blocks, bare = _blocks(text)
    for block in [*reversed(blocks), bare]:
        layers = _layers_in(block)
        if layers:
            return layers
    return None


def feature_layers(code: str | None) -> list[str] | None:
    """The layers of `self.features = nn.Sequential(...)` in `code`, one call text each (None:
    no such assignment, or one we cannot read whole)."""
    tree = _parse(code or "")
    for node in ast.walk(tree) if tree is not None else []:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Attribute) and target.attr == "features":
            return _sequential_layers(node.value)
    return None


def _blocks(text: str) -> tuple[list[str], str]:
    """The contents of the python (or untagged) fenced blocks, and the text outside them."""
    blocks: list[str] = []
    outside: list[str] = []
    inside: list[str] | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        fence = _FENCE.match(line)
        if fence and inside is None:
            inside = [] if fence.group(2).lower() in _CODE_TAGS else None
            if inside is None:
                outside.append(line)
        elif fence and inside is not None:
            blocks.append("\n".join(inside))
            inside = None
        elif inside is not None:
            inside.append(line)
        else:
            outside.append(line)
    if inside:  # an unclosed block runs to the end
        blocks.append("\n".join(inside))
    return blocks, "\n".join(outside)


def _parse(code: str) -> ast.Module | None:
    if not code.strip() or parse_bounds(code) is not None:
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _defines_net(code: str) -> bool:
    tree = _parse(code)
    return tree is not None and defines_net(tree)


def _layers_in(block: str) -> list[str] | None:
    """A block's layers: a lone Sequential's arguments, or its lines of layer calls."""
    tree = _parse(textwrap.dedent(block).strip())
    if tree is None:
        return None
    statements = [s for s in tree.body if not isinstance(s, ast.Import | ast.ImportFrom)]
    if len(statements) == 1 and isinstance(statements[0], ast.Assign | ast.Expr):
        inner = _sequential_layers(statements[0].value)
        if inner is not None:
            return inner
    calls: list[ast.expr] = []
    for statement in statements:
        if not isinstance(statement, ast.Expr):
            return None
        value = statement.value
        calls += value.elts if isinstance(value, ast.Tuple) else [value]
    return _call_texts(calls)


def _sequential_layers(value: ast.expr) -> list[str] | None:
    """The arguments of `nn.Sequential(...)` (or `Sequential(...)`) as call texts, else None."""
    if not isinstance(value, ast.Call) or value.keywords:
        return None
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return _call_texts(list(value.args)) if name == "Sequential" else None


def _call_texts(nodes: list[ast.expr]) -> list[str] | None:
    if not nodes or len(nodes) > MAX_LAYERS or not all(isinstance(n, ast.Call) for n in nodes):
        return None
    try:
        return [ast.unparse(node) for node in nodes]
    except (RecursionError, ValueError):
        return None
