"""Claims success with one impossible number in its report (FIELD = VALUE), and predictions of the
right length, so that only the number can be refused."""

import json
import os
import sys

import torch
import torch.nn as nn

FIELD = "params"
VALUE = 10**40

out = sys.argv[sys.argv.index("--out") + 1]
data = sys.argv[sys.argv.index("--data") + 1]
n_val = len(torch.load(os.path.join(data, "val_images.pt"), mmap=True, weights_only=True))
report = {"status": "ok", "kind": "ok", "message": "trained", "params": 1, "flops": 1}
report["timings"] = {"train_s": 1.0}
if FIELD.startswith("timings."):
    report["timings"][FIELD.split(".")[1]] = VALUE
else:
    report[FIELD] = VALUE
with open(os.path.join(out, "report.json"), "w") as f:
    f.write(json.dumps(report))  # NaN and Infinity as Python writes them
with open(os.path.join(out, "predictions.json"), "w") as f:
    json.dump([0] * n_val, f)
os._exit(0)


class Net(nn.Module):
    def forward(self, x):
        return x
