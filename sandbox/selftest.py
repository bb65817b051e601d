"""The sandbox's self-test: a known-good tiny net trained through an evaluator's own sandbox.

If this net does not score `ok`, no candidate can: the sandbox (engine, image, interpreter, torch,
data mount) is broken, and that is an InfrastructureFault, not a candidate's failure.
"""

from __future__ import annotations

import time
from dataclasses import replace

from sandbox.backends.base import BackendUnavailable
from sandbox.evaluate import Evaluator
from sandbox.faults import InfrastructureFault

# A few hundred images are enough to prove the whole path (mount, import, train, predict, score)
# and keep the test to seconds on a CPU.
SELF_TEST_TRAIN_IMAGES = 256
_TRAINED = ("ok", "over_limit")  # over_limit: it trained and was scored, the limits are the user's

_TINY_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes={classes}):
        super().__init__()
        self.conv = nn.Conv2d({channels}, 8, 3, padding=1)  # (B, 8, H, W)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, 8, 1, 1): any image size
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))
"""


def tiny_net_code(channels: int, classes: int) -> str:
    return _TINY_NET.format(channels=channels, classes=classes)


def self_test(evaluator: Evaluator) -> float:
    """Train the tiny net through `evaluator`'s sandbox (uncached, on a few images); return the
    seconds it took. InfrastructureFault, naming the fix, when it does not score ok."""
    dataset = evaluator.dataset
    # a busy machine must not pass for a broken sandbox: at least 10 minutes of wall time (a
    # working sandbox needs seconds; a broken one fails at once)
    limits = replace(evaluator.limits, timeout_s=max(evaluator.limits.timeout_s, 600.0))
    probe = Evaluator(
        dataset,
        evaluator.backend,
        {**evaluator.train_config, "train_limit": SELF_TEST_TRAIN_IMAGES, "epochs": 1},
        limits,
        cache=None,  # a self-test result is never cached, never archived
    )
    code = tiny_net_code(dataset.input_shape[0], dataset.num_classes)
    started = time.monotonic()
    try:
        result = probe.evaluate(code)
    except BackendUnavailable as exc:
        raise InfrastructureFault(
            f"the {evaluator.backend.name} sandbox cannot run a job ({exc})",
            "fix the sandbox, or choose another with NASLOOP_SANDBOX",
        ) from None
    took = time.monotonic() - started
    if result["kind"] not in _TRAINED:
        detail = " ".join(f"{result['kind']}: {result['message']}".split())[:300]
        tail = result["traceback"].strip().splitlines()[-1:] if result["traceback"] else []
        where = f"; last log line: {tail[0][:200]}" if tail else ""
        raise InfrastructureFault(
            f"a known-good tiny net failed in the {evaluator.backend.name} sandbox "
            f"({detail}{where})",
            "check the sandbox's interpreter and torch (NASLOOP_IMAGE, "
            "`python -m sandbox.image build`) or choose another with NASLOOP_SANDBOX",
        )
    return took
