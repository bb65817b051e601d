"""The layers a program builds, read from its source with `ast`: never imported, never run.

The dry run's architecture fingerprint is a hash: it says whether two networks are the same, not
what either one holds. To name a layer in a piece of advice ("the second convolution") and to see
whether the next program changed it, the host reads the `nn.X(...)` constructor calls of the
program instead, in the order they are written: their class, their width (out channels or out
features, when written as a number) and their stride. What this cannot see: a layer built in a
loop or by a helper called several times counts once, a width held in a variable is unknown
(None), and a layer built but never called counts (the dead-layer check fails those before
training, agent/check/dead_layers.py). Both sides of a comparison are read the same way, so a
count is a fair yardstick for "more BatchNorm than before" even where it is not the net's true
depth.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from sandbox.code import parse_bounds
from sandbox.inert import inert

SOURCE_CHARS = 60  # a layer's call as the menu quotes it
# Classes of torch.nn that hold layers rather than being one
CONTAINERS = frozenset(
    {"Sequential", "ModuleList", "ModuleDict", "Module", "Parameter", "ParameterList"}
)
# Each measure's layer classes (a class name matched from its start)
FAMILIES = {
    "conv": re.compile(r"(?:Lazy)?Conv[123]d$"),
    "batchnorm": re.compile(r"(?:Lazy)?BatchNorm[123]d$"),
    "dropout": re.compile(r"(?:Alpha|FeatureAlpha)?Dropout(?:[123]d)?$"),
    "pool": re.compile(r"(?:Max|Avg|LP)Pool[123]d$"),  # adaptive pools are global: not counted
    "linear": re.compile(r"(?:Lazy)?Linear$"),
}
# What a measure counts: the classes of a family, or (channels, hidden, downsample) a sum
MEASURES = ("conv", "batchnorm", "dropout", "pool", "linear", "channels", "hidden", "downsample")


@dataclass(frozen=True)
class Layer:
    kind: str  # the torch.nn class name: Conv2d, BatchNorm2d, LazyLinear, ...
    source: str  # its call as written, on one line, clipped and made inert
    width: int | None  # out channels (conv), out features (linear), features (norm), if literal
    stride: int | None  # a convolution's stride, if literal (None: not given or not literal)

    def of(self, family: str) -> bool:
        pattern = FAMILIES.get(family)
        return pattern is not None and pattern.match(self.kind) is not None


def _literal_int(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.Tuple) and node.elts:  # stride=(2, 2)
        node = node.elts[0]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _argument(call: ast.Call, position: int, *names: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg in names:
            return keyword.value
    if position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args):
        return call.args[position]
    return None


def _layer_class(call: ast.Call, imported: dict[str, str]) -> str | None:
    """`X` for `nn.X(...)`, `torch.nn.X(...)`, or `Y(...)` where Y is X imported from torch.nn."""
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value
        is_nn = (isinstance(owner, ast.Name) and owner.id == "nn") or (
            isinstance(owner, ast.Attribute)
            and owner.attr == "nn"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "torch"
        )
        name = func.attr if is_nn else None
    else:
        name = imported.get(func.id) if isinstance(func, ast.Name) else None
    if name is None or not name[:1].isupper() or name in CONTAINERS:
        return None
    return name


def _layer(call: ast.Call, kind: str, code: str) -> Layer:
    lazy = kind.startswith("Lazy")
    width: ast.expr | None = None
    stride: ast.expr | None = None
    if FAMILIES["conv"].match(kind):
        width = _argument(call, 0 if lazy else 1, "out_channels")
        stride = _argument(call, 2 if lazy else 3, "stride")
    elif FAMILIES["linear"].match(kind):
        width = _argument(call, 0 if lazy else 1, "out_features")
    elif FAMILIES["batchnorm"].match(kind):
        width = None if lazy else _argument(call, 0, "num_features")
    text = " ".join((ast.get_source_segment(code, call) or kind).split())
    if len(text) > SOURCE_CHARS:
        text = text[: SOURCE_CHARS - 3] + "..."
    return Layer(kind, inert(text.replace("`", "'")), _literal_int(width), _literal_int(stride))


def read_layers(code: str) -> list[Layer] | None:
    """The layers `code` builds, in the order written; None when it does not parse (or is too
    big to parse safely). An empty list: it parses but builds no torch.nn layer we can see."""
    calls = _layer_calls(code)
    return None if calls is None else [_layer(call, kind, code) for call, kind in calls]


def signature(code: str | None) -> tuple[str, ...] | None:
    """The layers `code` builds, each call as written on one line (unclipped), in order: two
    programs with the same signature build the same layers with the same arguments, whatever
    their names, comments or layout. None when no layer can be read: such programs are never
    the same by this measure."""
    text = code or ""
    calls = _layer_calls(text)
    if not calls:
        return None
    return tuple(" ".join((ast.get_source_segment(text, c) or k).split()) for c, k in calls)


def _layer_calls(code: str) -> list[tuple[ast.Call, str]] | None:
    """Every `nn.X(...)` call of `code` with its class, in the order written (None: unread)."""
    if not isinstance(code, str) or not code.strip() or parse_bounds(code) is not None:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    imported = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("torch.nn", "torch.nn.modules")
        for alias in node.names
    }
    calls = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    found = []
    for call in calls:
        kind = _layer_class(call, imported)
        if kind is not None:
            found.append((call, kind))
    return found


def measure(layers: list[Layer] | None, name: str) -> int | None:
    """One number about a network, for "did it change where the advice said": a family's count;
    `channels`, the sum of the convolutions' literal widths; `hidden`, the widest literal
    Linear; `downsample`, pools plus convolutions with a stride over 1. None when the program
    was not read or (channels, hidden) holds no literal width."""
    if layers is None:
        return None
    if name in FAMILIES:
        return sum(layer.of(name) for layer in layers)
    if name == "channels":
        widths = [layer.width for layer in layers if layer.of("conv") and layer.width]
        return sum(widths) if widths else None
    if name == "hidden":
        widths = [layer.width for layer in layers if layer.of("linear") and layer.width]
        return max(widths) if widths else None
    if name == "downsample":
        return sum(
            layer.of("pool") or (layer.of("conv") and (layer.stride or 1) > 1) for layer in layers
        )
    raise ValueError(f"unknown measure {name!r}: one of {', '.join(MEASURES)}")
