"""Writes 2 GiB to stdout and stderr (1 GiB each), then trains normally."""

import os

import torch.nn as nn

line = b"FLOOD " + b"x" * 1017 + b"\n"  # 1 KiB
chunk = line * 1024  # 1 MiB
for _ in range(1024):
    os.write(1, chunk)
    os.write(2, chunk)
print("FLOOD DONE", flush=True)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
