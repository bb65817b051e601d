import time

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)

    def forward(self, x):
        if self.training:
            time.sleep(10**6)
        return self.fc(x.flatten(1))
