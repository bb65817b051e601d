"""honest_twin.py's net, which rewrites the runner's report on its way out to claim FIELD = VALUE
(a tiny parameter count, FLOP count, latency or peak memory) and so pass a hardware limit its
honest twin fails."""

import sys

import torch
from torch import nn

FIELD = "params"
VALUE = 1000

runner = sys.modules["__main__"]
_write_json = runner.write_json


def forged_write_json(path, payload):
    if isinstance(payload, dict) and payload.get("status") == "ok":
        payload[FIELD] = VALUE
    _write_json(path, payload)


runner.write_json = forged_write_json


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
        )
        self.head = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))
