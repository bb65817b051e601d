"""Leaves a report of DEPTH nested JSON levels and exits before the runner can write its own."""

import os
import sys

import torch.nn as nn

DEPTH = 200_000
OPEN = "["  # or "{": nested objects

out = sys.argv[sys.argv.index("--out") + 1]
if OPEN == "[":
    body = "[" * DEPTH + "]" * DEPTH
else:
    body = '{"a":' * DEPTH + "0" + "}" * DEPTH
with open(os.path.join(out, "report.json"), "w") as f:
    f.write(body)
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
