"""Leaves a FIFO where a result file (NAME) belongs, then exits: an ordinary open of it blocks for
good. For the predictions it first claims success, so that the host goes on to read them."""

import json
import os
import sys

import torch.nn as nn

NAME = "report.json"

out = sys.argv[sys.argv.index("--out") + 1]
if NAME != "report.json":
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"status": "ok", "kind": "ok", "message": "trained"}, f)
os.mkfifo(os.path.join(out, NAME))
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
