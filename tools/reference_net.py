"""A small reference candidate: three conv blocks and a linear head (about 0.1 M parameters).

It is what `python -m tools.train_candidate` evaluates by default and what the benchmarks train,
written the way the Generator is asked to write candidates.
"""

import torch
from torch import nn


def block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class Net(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            # lazy: input channels come from the first batch, so RGB and grey datasets both work
            block(nn.LazyConv2d(32, 3, padding=1, bias=False), 32),
            block(nn.Conv2d(32, 64, 3, padding=1, bias=False), 64),
            block(nn.Conv2d(64, 128, 3, padding=1, bias=False), 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> features (B, 128, H/8, W/8) -> logits (B, num_classes)
        features = self.pool(self.features(x)).flatten(1)  # (B, 128)
        logits: torch.Tensor = self.fc(features)
        return logits
