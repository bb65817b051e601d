"""Accuracy, computed on the host against labels that never entered the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# A predictions file is a JSON list of ints, one per validation image: a few hundred KB at most.
# Anything much larger was not written by our runner and is not read.
MAX_PREDICTIONS_BYTES = 64 * 2**20


class InvalidPredictions(ValueError):
    """The sandbox's predictions file is missing, oversized or malformed."""


def read_predictions(path: Path, expected: int, num_classes: int) -> torch.Tensor:
    if not path.is_file():
        raise InvalidPredictions("no predictions were written")
    if path.stat().st_size > MAX_PREDICTIONS_BYTES:
        raise InvalidPredictions(f"predictions file is {path.stat().st_size} bytes, too large")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPredictions(f"predictions are not valid JSON: {exc}") from None
    if not isinstance(values, list) or len(values) != expected:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise InvalidPredictions(f"expected {expected} predictions, got {got}")
    if not all(type(v) is int and 0 <= v < num_classes for v in values):
        raise InvalidPredictions(f"predictions must be class indices in [0, {num_classes})")
    return torch.tensor(values, dtype=torch.long)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    if len(predictions) != len(labels) or len(labels) == 0:
        raise InvalidPredictions(f"{len(predictions)} predictions for {len(labels)} labels")
    return int((predictions == labels).sum()) / len(labels)
