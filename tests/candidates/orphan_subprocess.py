"""Leaves a `sleep 1000` child behind, then trains normally: it must not outlive the job."""

import subprocess

import torch.nn as nn

CHILD = subprocess.Popen(["sleep", "1000"], start_new_session=True)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
