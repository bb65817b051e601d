"""Calls sys.exit(0) after a few training steps, as if everything had gone well."""

import sys

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps == 5:
                print("val_accuracy: 1.0", flush=True)
                sys.exit(0)
        return self.fc(x.flatten(1))
