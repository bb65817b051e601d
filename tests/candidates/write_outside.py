"""Tries to leave a file everywhere outside its scratch: job, data, root, homes, host tmp, runs.

Reports in its error message which writes succeeded; the test checks the host side itself.
"""

import glob
import os
import sys

import torch.nn as nn

NAME = "NASLOOP_PWNED"


def arg(flag):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else "/nonexistent"


job, data, out = arg("--job"), arg("--data"), arg("--out")
targets = [
    "/", "/job", "/data", "/out/..", "/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/etc",
    "/usr", "/usr/local/lib", "/work", "/work/main", "/work/main/runs", "/run", "/var/lib/docker",
    job, data, os.path.dirname(out), os.path.dirname(os.path.dirname(out)),
    os.path.expanduser("~"), os.getcwd(), "/proc/1/cwd", "/proc/1/root/tmp", "/proc/1/root/root",
]
targets += glob.glob("/home/*") + glob.glob("/tmp/pytest-of-*/*") + glob.glob("/work/*/runs")
wrote, denied = [], 0
for d in targets:
    path = os.path.join(d, NAME)
    try:
        with open(path, "w") as f:
            f.write("pwned")
        wrote.append(os.path.realpath(path))
    except OSError:
        denied += 1
# a symlink from the scratch to the outside is no way around it either
try:
    os.symlink("/root/" + NAME, os.path.join(out, "link"))
    with open(os.path.join(out, "link"), "w") as f:
        f.write("pwned")
    wrote.append("via symlink")
except OSError:
    denied += 1
raise RuntimeError(f"WROTE {wrote} DENIED {denied}")


class Net(nn.Module):
    def forward(self, x):
        return x
