"""Advice that names a layer, is new, and can be checked: the menu of moves, the host's
replacement of repeated or generic advice, and whether the next network followed it.

Why: a 0.5B code model as the Improver wrote one sentence every iteration ("Add more layers or
use a different architecture ...", issue 25): nothing in it names a layer, so the Generator
cannot act on it, and the same words every time teach it nothing. So, after a network trained:

- `advice_menu` reads its layers (agent/replies/layers.py) and offers a few concrete moves, each
  naming one place of that network and what the next network must show: "put BatchNorm2d(32)
  after the first convolution" expects more BatchNorm layers than now (`expect`, "batchnorm>0");
- the Improver's prompt lists them and asks for one, by number or in its own words, or another
  change at the level of layers;
- `settle_advice` resolves a pick ("move 2") to that move's words; a suggestion that names no
  layer, or one the K-window already holds (case, spaces and punctuation aside), is replaced by
  the first move the window has not tried yet, recorded as `source: "menu"`;
- `closed_triple` measures, when the next candidate's outcome closes the triple, whether that
  network shows what the advice expected (`followed`: True, False, or None when the advice held
  nothing checkable or the program could not be read). The Improver's own advice is checked too
  when its words name one layer family and a direction ("add dropout", "fewer channels").

After a failure the Improver's job is the fix: no menu and no replacement, only the check. With
`concrete_advice` off there is no menu and nothing is replaced; the check still runs, so the
ablation reports how often free advice was followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.replies.layers import MEASURES, Layer, measure, read_layers
from agent.state import Candidate, Pending, TaskInfo, Triple

MENU_SIZE = 5
MIN_MAP = 3  # a further block only while the feature map stays at least this wide
WIDE = 128  # a convolution this wide or wider is not offered for doubling
WIDE_HEAD = 512
_EXPECT = re.compile(r"^(\w+)([<>])(-?\d+)$")
_PICK = re.compile(
    r"^\s*(?:(?:move|option|choice|number|no\.?)\s*)?#?\s*(\d{1,2})\s*(?:[.):\-]|$)", re.I
)
# Words that name a layer or a layer's number: advice without any of them is generic
_LAYER_WORDS = re.compile(
    r"conv|linear|batch\s*norm|\bbn\b|norm|channel|filter|dropout|pool|kernel|stride|padding|"
    r"dilation|relu|gelu|silu|tanh|sigmoid|activation|residual|skip\s+connection|flatten|dense|"
    r"fully[\s-]connected|\bfc\d*\b|hidden|neuron|\bunits?\b|"
    r"\b(?:\d+|one|two|three|four|five|six)\s+(?:\w+\s+){0,2}layers?\b",
    re.I,
)
# The Improver's own words, read as a check: (measure, the nouns that name it)
_NOUNS = (
    ("batchnorm", re.compile(r"batch\s*norm|\bbn\b", re.I)),
    ("dropout", re.compile(r"dropout", re.I)),
    ("downsample", re.compile(r"pool|downsampl|stride", re.I)),
    ("channels", re.compile(r"channel|filter", re.I)),
    ("hidden", re.compile(r"hidden|neuron|\bunits\b", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("linear", re.compile(r"linear|fully[\s-]connected|dense|\bfc\b", re.I)),
)
_WIDTH = re.compile(r"\bwid(?:en|er|th)\b|\bdoubl", re.I)  # "widen the conv" is about channels
_UP = r"add|adding|insert|more|increase|double|doubling|widen|wider|deeper|extra|another|"
_UP += r"larger|bigger|use|apply|put|introduce|include"
_DOWN = r"remove|removing|delete|drop|fewer|reduce|decrease|halve|smaller|narrower|less|shrink"
_DIRECTION = re.compile(rf"\b(?:(?P<up>{_UP})|(?P<down>{_DOWN}))\b", re.I)


@dataclass(frozen=True)
class Move:
    """One concrete change to one network: a stable id, the words, and what it must change."""

    id: str  # conv_stem, batchnorm, downsample, conv_block, wider, wider_head, dropout
    text: str
    measure: str  # agent/replies/layers.py's measure that the change raises
    before: int  # that measure on the network the move is for

    @property
    def expect(self) -> str:
        return f"{self.measure}>{self.before}"


def _nth(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def _moves(layers: list[Layer], channels: int, size: int, classes: int) -> list[Move]:
    """Every move that fits this network, most likely to help first."""
    convs = [layer for layer in layers if layer.of("conv")]
    count = {name: measure(layers, name) or 0 for name in ("conv", "batchnorm", "downsample")}
    moves: list[Move] = []
    if not convs and any(layer.of("linear") for layer in layers):
        text = (
            f"The network has no convolution: add a stem nn.Conv2d({channels}, 32, 3, "
            "padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2) and apply it to x in "
            "forward before anything flattens it."
        )
        moves.append(Move("conv_stem", text, "conv", 0))
    bare = _conv_without_norm(layers)
    if bare is not None:
        n, conv = bare
        norm = f"nn.BatchNorm2d({conv.width})" if conv.width else "an nn.BatchNorm2d"
        text = f"Put {norm} right after the {_nth(n)} convolution (`{conv.source}`), before its "
        text += "activation."
        moves.append(Move("batchnorm", text, "batchnorm", count["batchnorm"]))
    if convs and count["downsample"] == 0:
        text = "Downsample early: add nn.MaxPool2d(2) after the first convolution (`"
        text += f"{convs[0].source}`) and its activation, so later layers see a smaller map."
        moves.append(Move("downsample", text, "downsample", 0))
    if convs and size >> (count["downsample"] + 1) >= MIN_MAP:
        last, c = convs[-1], convs[-1].width
        cin, cout = (str(c), str(2 * c)) if c else ("C", "2*C")
        text = f"Add one more convolution block after the last one (its conv: `{last.source}`): "
        text += f"nn.Conv2d({cin}, {cout}, 3, padding=1), nn.BatchNorm2d({cout}), nn.ReLU(), "
        text += "nn.MaxPool2d(2)."
        moves.append(Move("conv_block", text, "conv", count["conv"]))
    narrow = [(n, c) for n, c in enumerate(convs, 1) if c.width and c.width <= WIDE // 2]
    if narrow:
        n, conv = narrow[-1]
        w = conv.width or 0
        text = f"Double the {_nth(n)} convolution's out-channels from {w} to {2 * w} (`"
        text += f"{conv.source}`), and give the layers right after it {2 * w} input channels."
        moves.append(Move("wider", text, "channels", measure(layers, "channels") or 0))
    hidden = [x for x in layers if x.of("linear") and x.width and x.width != classes]
    widest = max(hidden, key=lambda x: x.width or 0, default=None)
    if widest is not None and widest.width and widest.width < WIDE_HEAD:
        w = widest.width
        text = f"Widen the head's hidden layer (`{widest.source}`) from {w} to {2 * w} units."
        moves.append(Move("wider_head", text, "hidden", measure(layers, "hidden") or 0))
    linears = [layer for layer in layers if layer.of("linear")]
    if len(linears) >= 2 and not measure(layers, "dropout"):
        text = f"Add nn.Dropout(0.25) right before the last linear layer (`{linears[-1].source}`)."
        moves.append(Move("dropout", text, "dropout", 0))
    return moves


def _conv_without_norm(layers: list[Layer]) -> tuple[int, Layer] | None:
    """The first convolution (its number among them, 1-based) with no BatchNorm after it before
    the next convolution or linear layer, in the order the program writes them."""
    n = 0
    for i, layer in enumerate(layers):
        if not layer.of("conv"):
            continue
        n += 1
        rest = layers[i + 1 :]
        end = next((j for j, x in enumerate(rest) if x.of("conv") or x.of("linear")), len(rest))
        if not any(x.of("batchnorm") for x in rest[:end]):
            return n, layer
    return None


def advice_menu(last: Candidate | None, task: TaskInfo) -> list[Move]:
    """The moves for the network that just trained (at most MENU_SIZE); none after a failure or
    for a program whose layers cannot be read."""
    if not last or (last.get("result") or {}).get("status") != "ok":
        return []
    layers = read_layers(last.get("code") or "")
    if not layers:
        return []
    dims = [int(d) for d in task.get("input_shape") or [1, 28, 28]]
    size = min(dims[1:]) if len(dims) > 1 else 28
    return _moves(layers, dims[0], size, int(task.get("num_classes") or 10))[:MENU_SIZE]


def normalised(text: str) -> str:
    """Text as compared for "the same advice": lower case, punctuation and spacing aside."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def is_generic(suggestion: str) -> bool:
    """Whether a suggestion names no layer and no count of layers ("add more layers")."""
    return _LAYER_WORDS.search(suggestion) is None


def picked(suggestion: str, menu: list[Move]) -> Move | None:
    """The menu move a suggestion chose: its words (copied whole or within more), else its
    number ("2", "move 2", "2. ..."); None when it chose none."""
    said = normalised(suggestion)
    for move in menu:
        words = normalised(move.text)
        if said == words or (len(words) >= 20 and words in said):
            return move
    number = _PICK.match(suggestion)
    if number and 1 <= int(number.group(1)) <= len(menu):
        return menu[int(number.group(1)) - 1]
    return None


def _fresh(menu: list[Move], window: list[Triple]) -> Move | None:
    """The first move the window has not tried (by id or by words); else the first that is not
    the newest advice; None when the menu has nothing else to offer."""
    tried = {t.get("move") for t in window} | {normalised(t["suggestion"]) for t in window}
    for move in menu:
        if move.id not in tried and normalised(move.text) not in tried:
            return move
    newest = window[-1] if window else None
    for move in menu:
        if newest is None or (
            move.id != newest.get("move")
            and normalised(move.text) != normalised(newest["suggestion"])
        ):
            return move
    return None


def said_expect(suggestion: str, layers: list[Layer] | None) -> str | None:
    """What the Improver's own words expect of the next network, when they name one layer
    family and which way to change it ("add dropout": dropout>0); None otherwise."""
    for name, nouns in _NOUNS:
        noun = nouns.search(suggestion)
        if noun is None:
            continue
        if name in ("conv", "linear") and _WIDTH.search(suggestion):
            name = "channels" if name == "conv" else "hidden"  # "widen the conv layers"
        before = measure(layers, name)
        words = list(_DIRECTION.finditer(suggestion))
        ahead = [w for w in words if w.start() < noun.start()]  # the verb that governs it
        word = ahead[-1] if ahead else (words[0] if words else None)
        if before is None or word is None:
            return None
        return f"{name}{'>' if word.group('up') else '<'}{before}"
    return None


def settle_advice(
    advice: Pending, menu: list[Move], window: list[Triple], advised: str | None
) -> Pending:
    """The advice the Generator gets, with where it came from and what it expects.

    `menu` is empty after a failure or with `concrete_advice` off: then the Improver's words
    stand, and only their check (`said_expect`) is added. `window` is the K-window including the
    triples just closed; `advised` the code of the network the advice is about."""
    problem, said = advice["problem"], advice["suggestion"]
    move = picked(said, menu) if menu else None
    stale = _repeats(move.text if move else said, window)
    if menu and ((move is None and is_generic(said)) or stale):
        fresh = _fresh(menu, window)
        if fresh is not None:
            return _pending(problem, fresh.text, "menu", fresh)
    if move is not None:
        return _pending(problem, move.text, "improver", move)
    settled = Pending(problem=problem, suggestion=said, source="improver")
    expect = said_expect(said, read_layers(advised or "")) if said else None
    if expect is not None:
        settled["expect"] = expect
    return settled


def _repeats(suggestion: str, window: list[Triple]) -> bool:
    said = normalised(suggestion)
    return any(normalised(t["suggestion"]) == said for t in window)


def _pending(problem: str, text: str, source: str, move: Move) -> Pending:
    return Pending(
        problem=problem, suggestion=text, source=source, move=move.id, expect=move.expect
    )


def followed(expect: str | None, code: str | None) -> bool | None:
    """Whether `code` shows what `expect` asked ("batchnorm>1": more than one BatchNorm layer);
    None when nothing was expected or the program cannot be read."""
    found = _EXPECT.match(expect or "")
    if found is None:
        return None
    name, sign, bound = found.group(1), found.group(2), int(found.group(3))
    value = measure(read_layers(code or ""), name) if name in MEASURES else None
    if value is None:
        return None
    return value > bound if sign == ">" else value < bound


def closed_triple(pending: Pending, candidate: Candidate, outcome: str) -> Triple:
    """The pending advice closed by `candidate`'s outcome, with its source, its move and
    whether the candidate followed it (only for advice that expected something)."""
    triple = Triple(
        iteration=candidate["iteration"],
        problem=pending["problem"],
        suggestion=pending["suggestion"],
        outcome=outcome,
    )
    if "source" in pending:
        triple["source"] = pending["source"]
    if "move" in pending:
        triple["move"] = pending["move"]
    if "expect" in pending:
        triple["followed"] = followed(pending["expect"], candidate.get("code"))
    return triple
