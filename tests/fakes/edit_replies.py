"""Scripted Generator replies that answer in edit blocks the way a small model does: the first
ask a whole module, then blocks wrapped in fences and CRLF with trailing spaces and an example
tail, a block whose SEARCH paraphrases a line of the code, one whose SEARCH occurs twice, and a
whole module that ignores the format. Serve `SCRIPT` with tests/fakes/openai_server.py (one reply
per ask, in order); tests/integration/test_edits.py says what each must become.

For the MNIST-5k task (input 1x28x28, 10 classes): FIRST, EDITED and MODULE give (B, 10) logits.
"""

from __future__ import annotations

FIRST = """Here is a small CNN.

```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.head(self.features(x))
```
"""
EDITED = (
    FIRST.split("```python\n")[1]
    .split("```")[0]
    .replace(
        "            nn.Conv2d(1, 16, 3, padding=1),\n",
        "            nn.Conv2d(1, 16, 3, padding=1),\n            nn.BatchNorm2d(16),\n",
    )
    .replace("nn.LazyLinear(num_classes))", "nn.Dropout(0.1), nn.LazyLinear(num_classes))")
)
BLOCKS = (
    "I add batch normalisation and dropout.\n\n```python\n<<<<<<< SEARCH\n"
    "            nn.Conv2d(1, 16, 3, padding=1),  \n=======\n"
    "            nn.Conv2d(1, 16, 3, padding=1),\n            nn.BatchNorm2d(16),\n"
    ">>>>>>> REPLACE\n```\n\n```python\n<<<<<<< SEARCH\n"
    "        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))\n=======\n"
    "        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.LazyLinear(num_classes))\n"
    ">>>>>>> REPLACE\n```\n\nExample usage:\n```python\nmodel = Net()\n```\n"
).replace("\n", "\r\n")
PARAPHRASED = (
    "<<<<<<< SEARCH\n        self.features = nn.Sequential(\n"
    "            nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, padding=1),\n=======\n"
    "        self.features = nn.Sequential(\n            nn.Conv2d(1, 24, 3, padding=1),\n"
    ">>>>>>> REPLACE\n"
)
TWICE = "<<<<<<< SEARCH\n            nn.ReLU(),\n=======\n            nn.GELU(),\n>>>>>>> REPLACE\n"
MODULE = FIRST.replace("Here is a small CNN.", "I rewrote it:").replace("16", "24")
ADVICE = '{"problem": "the network is small", "suggestion": "add batch normalisation"}'
SCRIPT = {"fake-generator": [FIRST, BLOCKS, PARAPHRASED, TWICE, MODULE], "fake-improver": [ADVICE]}
