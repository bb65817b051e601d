"""Ignores every signal it can (TERM, INT, HUP, QUIT), blocks the rest, then hangs."""

import signal
import time

import torch.nn as nn

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        if self.training:
            while True:
                time.sleep(1)
        return self.fc(x.flatten(1))
