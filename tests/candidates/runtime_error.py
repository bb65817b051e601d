import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.training and self.calls > 3:
            raise ValueError("deliberate failure on the third training batch")
        return self.fc(x.flatten(1))
