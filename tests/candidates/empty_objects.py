"""Claims success and leaves predictions of COUNT empty JSON objects (10 million: 30 MB, under
the size cap a fixed bound would give), then exits."""

import json
import os
import sys

import torch.nn as nn

COUNT = 10_000_000

out = sys.argv[sys.argv.index("--out") + 1]
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump({"status": "ok", "kind": "ok", "message": "trained", "params": 1, "flops": 1}, f)
with open(os.path.join(out, "predictions.json"), "w") as f:
    f.write("[")
    chunk = "{}," * 100_000
    for _ in range(COUNT // 100_000):
        f.write(chunk)
    f.write("{}," * (COUNT % 100_000 - 1) + "{}]")
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
