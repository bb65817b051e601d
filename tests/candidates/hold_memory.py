"""honest_twin.py's small net, which also holds MEGABYTES of freshly written memory for the whole
of training: a peak the host must see, whatever the candidate reports."""

import torch
from torch import nn

MEGABYTES = 300

HELD = []


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        if MEGABYTES:
            # ones, not empty: untouched pages are never charged to anyone
            HELD.append(torch.ones(MEGABYTES * 2**20, dtype=torch.uint8))
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
        )
        self.head = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))
