"""Starts non-daemon threads that never end, then trains normally: the run must still finish."""

import threading
import time

import torch.nn as nn


def forever():
    while True:
        time.sleep(0.5)


for _ in range(4):
    threading.Thread(target=forever, daemon=False).start()


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        threading.Thread(target=forever, daemon=False).start()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
