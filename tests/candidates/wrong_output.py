import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 7)  # seven classes instead of the dataset's ten

    def forward(self, x):
        return self.fc(x.flatten(1))
