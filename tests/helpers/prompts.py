"""What the prompt builders are given in their tests: a task whose shape and classes are easy to
spot, a best and a last candidate whose code carries a marker, a window and a suggestion."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from agent.state import Candidate, TaskInfo, Triple
from sandbox.result import EvalResult, new_result

TASK = TaskInfo(dataset="cifar100", input_shape=[3, 40, 48], num_classes=37, n_train=45_000)


BEST_CODE = "import torch.nn as nn\n\nclass Net(nn.Module):\n    BEST_MARKER = 1\n"


LAST_CODE = "import torch.nn as nn\n\nclass Net(nn.Module):\n    LAST_MARKER = 1\n"


SUGGESTION = "SUGGESTION_MARKER: add BatchNorm after conv2."


def ok_result(accuracy: float = 0.65, **extra: Any) -> EvalResult:
    fields: dict[str, Any] = {"val_accuracy": accuracy, "params": 420_000, "flops": 12_300_000}
    fields.update(extra)
    return new_result("ok", "", "hash", **fields)


def failed_result(kind: str = "shape", message: str = "mat1 and mat2 shapes") -> EvalResult:
    traceback = 'Traceback (most recent call last):\n  File "candidate.py", line 9\nTRACE_MARKER'
    return new_result(kind, message, "hash", traceback=traceback)


BEST = Candidate(iteration=3, code=BEST_CODE, result=ok_result(0.65))


LAST_OK = Candidate(iteration=5, code=LAST_CODE, result=ok_result(0.61))


LAST_FAILED = Candidate(iteration=5, code=LAST_CODE, result=failed_result())


WINDOW = [
    Triple(iteration=4, problem="WINDOW_P1", suggestion="WINDOW_S1", outcome="ok: val 0.6"),
    Triple(iteration=5, problem="WINDOW_P2", suggestion="WINDOW_S2", outcome="failed (oom): x"),
]


def text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def human(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)


BASE = """import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):  # x: (B, 1, 28, 28)
        return self.head(self.features(x))  # (B, 10)
"""
