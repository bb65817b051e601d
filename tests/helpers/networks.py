"""Networks the way the 0.5B coder writes them (a forward that skips `features`, the same net in
other words), and the real runner behind an Evaluator without a sandbox, for the network checks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.backends.base import Limits, RunOutcome
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.inside import runner
from tests.helpers.sandbox_jobs import ScriptedBackend

SKIPS_FEATURES = """import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.LazyLinear(128),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(num_classes)
        )

    def forward(self, x):  # x: (B, 1, 28, 28)
        x = x.view(-1, 28 * 28)
        return self.head(x)  # (B, 10)


# Example usage
model = Net()
print(model)
"""

# The same network in other words: other names and comments, a module never called, a
# docstring, another flatten, a main-guarded tail.
SAME_NETWORK = '''import torch
import torch.nn as nn


class Net(nn.Module):
    """An MLP for MNIST digits."""

    def __init__(self, num_classes=10):
        super(Net, self).__init__()
        # convolutional part (more layers here)
        self.features = nn.Sequential(nn.Conv2d(1, 64, 3), nn.ReLU())
        self.unused = nn.Dropout(0.5)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.LazyLinear(256),  # hidden layer
            nn.ReLU(),
            nn.LazyLinear(num_classes),
        )

    def forward(self, x):
        # flatten the image into a vector
        x = x.reshape(x.size(0), -1)
        out = self.classifier(x)
        return out


if __name__ == "__main__":
    net = Net()
    print(net(torch.randn(1, 1, 28, 28)).shape)
'''

WIDER = SKIPS_FEATURES.replace("nn.LazyLinear(256), nn.ReLU()", "nn.LazyLinear(512), nn.ReLU()")
TANH = SKIPS_FEATURES.replace(
    "nn.ReLU(), nn.LazyLinear(num_classes)", "nn.Tanh(), nn.LazyLinear(num_classes)"
)
USES_FEATURES = SKIPS_FEATURES.replace(
    "x = x.view(-1, 28 * 28)\n", "x = self.features[:4](x)\n"
).replace("nn.LazyLinear(128),\n", "")


def run_runner(job: Path, data: Path, out: Path) -> RunOutcome:
    started = time.monotonic()
    paths = ["--data", str(data), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-I", "-B", str(job / "runner.py"), "--job", str(job), *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    marker = runner.CANDIDATE_MARKER in done.stderr
    return RunOutcome(
        done.returncode, False, False, done.stderr[-2000:], time.monotonic() - started,
        reached_candidate=marker,
    )  # fmt: skip


def real_evaluator(mnist: PreparedDataset, **config: Any) -> Evaluator:
    """The Evaluator with a backend that runs the real runner process, unsandboxed."""
    backend = ScriptedBackend(lambda job: run_runner(job.job_dir, job.data_dir, job.out_dir))
    train = {"train_limit": 256, "latency_runs": 1, "batch_size": 64, **config}
    return Evaluator(mnist, backend, train, Limits(timeout_s=300, memory_mb=4000))


# A small honest net whose forward first runs `body` (what the static policy is shown)
POLICY_NET = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):
{body}
        return self.head(self.features(x))
"""


def policy_net(body: str = "pass", header: str = "") -> str:
    lines = "\n".join("        " + line for line in body.splitlines())
    return header + POLICY_NET.format(body=lines)
