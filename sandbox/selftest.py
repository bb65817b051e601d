"""The sandbox self-test: a known-good tiny net through the run's own sandbox, before any candidate.

A sandbox that cannot train this net (no torch in the image, a dataset it cannot read, a Python
the process sandbox cannot start, an engine that is gone) would fail every candidate for reasons
none of them caused. So the search runs this first, and again whenever it resumes; `agent.doctor`
reuses it. Its result is never cached and never archived: it is not a candidate.
"""

from __future__ import annotations

import time
from dataclasses import replace

from sandbox.evaluate import Evaluator
from sandbox.faults import InfrastructureFault

# Channels are averaged first, so the same net fits grey and RGB datasets of any size, without a
# lazy module (which would import torch._dynamo: a second more per fresh interpreter).
KNOWN_GOOD_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(8 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(1, keepdim=True)  # (B, 1, H, W)
        x = self.pool(torch.relu(self.conv(x)))  # (B, 8, 2, 2)
        return self.fc(x.flatten(1))  # (B, num_classes)
"""
# Training images the self-test uses: enough for a few steps of every code path the runner has
# (augmentation, optimiser, NaN check), few enough to take well under a second.
SELF_TEST_IMAGES = 256
FIX = (
    "check the sandbox with `python -m tools.train_candidate` (it trains the reference net and "
    "shows the whole log)"
)


def self_test(evaluator: Evaluator) -> float:
    """Train KNOWN_GOOD_NET through `evaluator`'s sandbox with its settings; seconds it took.

    Same backend (a warm container started here serves the first candidate), dataset, limits,
    device and precision; only the number of training images is cut. Raises InfrastructureFault
    unless the result is `ok`.
    """
    config = {**evaluator.train_config, "train_limit": SELF_TEST_IMAGES}
    # A busy machine must not pass for a broken sandbox: the wall-time limit is at least 10 min
    # (a working sandbox takes seconds; a broken one usually fails at once).
    limits = replace(evaluator.limits, timeout_s=max(evaluator.limits.timeout_s, 600.0))
    probe = Evaluator(
        evaluator.dataset, evaluator.backend, config, limits, cache=None, precheck=False
    )
    started = time.monotonic()
    try:
        result = probe.evaluate(KNOWN_GOOD_NET)
    except InfrastructureFault as fault:
        raise InfrastructureFault(f"sandbox self-test: {fault.cause}", fault.fix) from fault
    if result["kind"] != "ok":
        last = result["traceback"].strip().splitlines()[-1:] or [""]
        detail = f"{result['kind']}: {result['message']}"
        if last[0] and last[0] not in detail:
            detail += f" ({last[0]})"
        raise InfrastructureFault(
            f"sandbox self-test: a known-good net did not train on {evaluator.backend.name} "
            f"({detail[:300]})",
            FIX,
        )
    return time.monotonic() - started
