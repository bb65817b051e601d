"""Tries every way to claim a perfect score without earning it."""

import json
import os
import sys

import torch
import torch.nn as nn

print("val_accuracy: 1.0")
print(json.dumps({"status": "ok", "val_accuracy": 1.0}))
out = sys.argv[sys.argv.index("--out") + 1]
fake = {"status": "ok", "kind": "ok", "message": "perfect", "val_accuracy": 1.0, "params": 1}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(fake, f)
with open(os.path.join(out, "predictions.json"), "w") as f:
    json.dump([0] * 10, f)
with open(os.path.join(out, "accuracy.txt"), "w") as f:
    f.write("1.0")

# Replace the runner's prediction step: without the labels, the best it can do is a guess.
runner = sys.modules["__main__"]
runner.predict = lambda net, cfg, images, device: [3] * len(images)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1)
