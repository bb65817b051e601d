"""The "mistakes" persona: an OpenAI-compatible responder that errs the way a real 0.5B model did.

Measured with a 0.5B instruction-tuned code model on the offline MNIST task (issue 14): its first
module used `sqrt` without importing it; a later one computed the flattened size wrong; asked
again, whatever the request said, it returned the module it had just written; its Improver copied
the window's line format (" -> suggestion: ", " -> outcome: ") into `problem`; one module ended in
an "example usage" tail that loads a weights file. This responder replays exactly that, keyed only
on the model name and on how many times it was asked, never on the wording of a request:

    generator ask 1, 2, 3: MODULES[0] (sqrt, no import)  — asks 4-6: MODULES[1] (wrong in_features)
    asks 7-9: MODULES[2] (example-usage tail)  — 10-12: MODULES[3] (fine)  — 13-15: MODULES[4]
    (forgets `self.head`)  — then MODULES[0] again, and so on.

For the MNIST-5k task (input 1x28x28, 10 classes): every module is fine once its one mistake is
fixed (checked on a (4, 1, 28, 28) batch: (4, 10) logits).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.fakes.openai_server import UnknownModel

GENERATOR, IMPROVER = "fake-generator", "fake-improver"
REPEATS = 3  # each module is written once and returned again on the next two asks

_SQRT = """Here is a simple CNN for the task.

```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 7 * 7, num_classes)
        nn.init.normal_(self.fc.weight, std=1.0 / sqrt(32 * 7 * 7))

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # (B, 16, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 32, 7, 7)
        x = torch.flatten(x, 1)
        return self.fc(x)
```
"""

_FLATTEN = """```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # (B, 32, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 64, 7, 7)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
```
"""

_EXAMPLE_TAIL = """```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


# Example usage
model = Net()
model.load_state_dict(torch.load("path_to_your_model.pth"))
model.eval()
```
"""

_FINE = """```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))  # (B, 10)
```
"""

_NO_HEAD = """```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )

    def forward(self, x):
        x = self.features(x)  # (B, 32, 7, 7)
        return self.head(x)  # (B, 10)
```
"""

MODULES = (_SQRT, _FLATTEN, _EXAMPLE_TAIL, _FINE, _NO_HEAD)

# The Improver: the window's one-line format copied into `problem`, as the real model did, and
# once a reply that cannot be read at all.
ADVICE = (
    {
        "problem": "1. problem: the network failed -> suggestion: import what it needs "
        "-> outcome: failed (runtime): NameError: name 'sqrt' is not defined",
        "suggestion": "Add `from math import sqrt` at the top of the module.",
    },
    {
        "problem": "problem: the first Linear layer gets the wrong input size -> suggestion: "
        "compute the flattened size -> outcome: failed (shape): mat1 and mat2 shapes",
        "suggestion": "Use nn.Flatten() and nn.LazyLinear(128) so the size is inferred.",
    },
    None,  # prose, no JSON: cannot be read
    {
        "problem": "accuracy is limited -> outcome: ok: val accuracy 0.9 -> suggestion: widen",
        "suggestion": "Add a third convolution block with 64 channels before the head.",
    },
)


class MistakesResponder:
    """Generator and Improver replies as the real small model wrote them (see the module doc)."""

    def __init__(self) -> None:
        self.models = [GENERATOR, IMPROVER]
        self._asks = {GENERATOR: 0, IMPROVER: 0}
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        model = str(body.get("model"))
        with self._lock:
            if model not in self._asks:
                raise UnknownModel(f"The model `{model}` does not exist. Known: {self.models}")
            n = self._asks[model]
            self._asks[model] += 1
        if model == GENERATOR:
            return MODULES[(n // REPEATS) % len(MODULES)]
        advice = ADVICE[n % len(ADVICE)]
        if advice is None:
            return "I think the network looks reasonable; maybe try something else next time."
        return json.dumps(advice)
