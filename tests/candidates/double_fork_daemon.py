"""Double-forks a daemon (new session, reparented away from the runner) that lives forever."""

import os
import time

import torch.nn as nn

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 1024)
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
