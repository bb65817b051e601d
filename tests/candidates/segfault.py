import ctypes

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        if self.training:
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        return self.fc(x.flatten(1))
