"""Claims success and leaves predictions of DEPTH nested JSON lists, then exits."""

import json
import os
import sys

import torch.nn as nn

DEPTH = 200_000

out = sys.argv[sys.argv.index("--out") + 1]
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump({"status": "ok", "kind": "ok", "message": "trained", "params": 1, "flops": 1}, f)
with open(os.path.join(out, "predictions.json"), "w") as f:
    f.write("[" * DEPTH + "]" * DEPTH)
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
