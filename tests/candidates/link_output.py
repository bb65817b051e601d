"""Leaves a symbolic link to TARGET (a device, a /proc file, a host file) where a result file (NAME)
belongs, then exits. Followed by the host, /dev/zero never ends, /proc/self/... is the host
process's own, and a host path is a host file. For the predictions it first claims success."""

import json
import os
import sys

import torch.nn as nn

NAME = "report.json"
TARGET = "/dev/zero"

out = sys.argv[sys.argv.index("--out") + 1]
if NAME != "report.json":
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"status": "ok", "kind": "ok", "message": "trained"}, f)
os.symlink(TARGET, os.path.join(out, NAME))
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
