"""Generators for the LLM-side fixes' tests: small models faced with a mistake no mechanical fix
can make (a convolution whose in_channels is not what the layer before it gives).

For the MNIST-5k task (input 1x28x28, 10 classes). `CHANNELS_WRONG`'s `conv2` expects 16
channels and gets 32: the dry run fails inside that layer, and its shape trace says so; the host's
fixers do not touch convolutions, so only the Generator can fix it. Each responder is an
OpenAI-compatible reply function for tests/fakes/openai_server.py, keyed on the model name:

- `LocatingResponder`: writes `CHANNELS_WRONG`; asked to repair it, it corrects the line the
  request marks as failing (`>> N | ...`, agent/check/locate.py's excerpt) when that line holds its
  mistake, and otherwise returns the module unchanged, as the real 0.5B model did when only told
  the error (issue 14: two repair turns fixed 0 of 20, the same mistake came back).
- `stubborn()`: the same mistake on every ask, whatever is asked.
- `EverNewMistakes`: the same kind of mistake with another width on every ask: it never repeats a
  program, so nothing but a budget stops the asks.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from tests.fakes.mistakes import GENERATOR, IMPROVER, MODULES
from tests.fakes.openai_server import ScriptedResponder, UnknownModel

WRONG_LINE = "        self.conv2 = nn.Conv2d(16, 64, 3, padding=1)"
RIGHT_LINE = "        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)"
CHANNELS_WRONG = f"""```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
{WRONG_LINE}
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.LazyLinear(num_classes)
        )

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # (B, 32, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 64, 7, 7)
        return self.head(x)
```
"""
WRONG_LINE_NUMBER = 10  # in the extracted module
CHANNELS_RIGHT = CHANNELS_WRONG.replace(WRONG_LINE, RIGHT_LINE)
FINE = MODULES[3]  # tests/fakes/mistakes.py's module that trains as written
ADVICE = json.dumps({"problem": "the net is small", "suggestion": "Add a third conv block."})
MARKED = re.compile(r"^>>\s*(\d+) \| (.*)$", re.MULTILINE)


def last_user_text(body: dict[str, Any]) -> str:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    return content if isinstance(content, str) else ""


FOLLOW_RATE = 0.25  # the share of pointed repairs a small model follows (see the module doc)


def follows(seed: object, rate: float = FOLLOW_RATE, salt: str = "repair") -> bool:
    """Whether a small model follows the request sampled with `seed`: deterministic, so a test
    can name the seeds it follows at, and spread like a coin with bias `rate` over seeds."""
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class LocatingResponder:
    """Fixes its mistake only when the request points at the failing line, and then only when
    `follows` says so for the request's seed (see the module doc)."""

    def __init__(self, rate: float = FOLLOW_RATE) -> None:
        self.models = [GENERATOR, IMPROVER]
        self.rate = rate

    def __call__(self, body: dict[str, Any]) -> str:
        model = str(body.get("model"))
        if model == IMPROVER:
            return ADVICE
        if model != GENERATOR:
            raise UnknownModel(f"The model `{model}` does not exist. Known: {self.models}")
        marked = [text for _, text in MARKED.findall(last_user_text(body))]
        pointed = any(text.rstrip() == WRONG_LINE.rstrip() for text in marked)
        if pointed and follows(body.get("seed"), self.rate):
            return "Here is the corrected module.\n\n" + CHANNELS_RIGHT
        return CHANNELS_WRONG


def stubborn() -> ScriptedResponder:
    return ScriptedResponder({GENERATOR: [CHANNELS_WRONG], IMPROVER: [ADVICE]})


class EverNewMistakes:
    """The channel mistake with a new output width on each ask: never the same program twice."""

    def __init__(self) -> None:
        self.models = [GENERATOR, IMPROVER]
        self._asks = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        model = str(body.get("model"))
        if model == IMPROVER:
            return ADVICE
        if model != GENERATOR:
            raise UnknownModel(f"The model `{model}` does not exist. Known: {self.models}")
        with self._lock:
            self._asks += 1
            width = 64 + self._asks
        return CHANNELS_WRONG.replace("Conv2d(16, 64", f"Conv2d(16, {width}")
