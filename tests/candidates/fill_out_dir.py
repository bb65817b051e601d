"""Writes 1 GiB into the one writable host directory it has (the out dir), 16 MiB per file.

The out dir is on the host's disk: a candidate that may write there without bound can fill it.
Reports in its error message how much it managed to write.
"""

import os
import sys

import torch.nn as nn

out = sys.argv[sys.argv.index("--out") + 1]
chunk = b"\0" * 2**20
written = 0
error = "none"
try:
    for i in range(64):
        with open(os.path.join(out, f"fill-{i}.bin"), "wb") as f:
            for _ in range(16):
                f.write(chunk)
                written += 1
except OSError as exc:
    error = type(exc).__name__
raise RuntimeError(f"FILLED {written} MiB ({error})")


class Net(nn.Module):
    def forward(self, x):
        return x
