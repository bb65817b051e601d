"""Accuracy, computed on the host against labels that never entered the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from sandbox.untrusted import HostileOutput, parse_json, read_bounded

# One prediction as our runner writes it: a class index, then ", " before the next. The file's
# size bound follows from the count and the largest index, so anything much larger (millions of
# `{}` under a generous fixed cap) is refused before a byte is parsed.
_INDEX = re.compile(rb"\s*(\d{1,9})\s*")
_SLACK_BYTES = 64  # a trailing newline, a space inside the brackets


class InvalidPredictions(ValueError):
    """The sandbox's predictions file is missing, oversized or malformed."""


def max_predictions_bytes(expected: int, num_classes: int) -> int:
    """The size of `expected` predictions as json.dumps writes them, plus a little slack."""
    digits = len(str(max(num_classes - 1, 0)))
    return expected * (digits + 2) + 2 + _SLACK_BYTES


def read_predictions(path: Path, expected: int, num_classes: int) -> torch.Tensor:
    """`expected` class indices from a JSON list; the count is checked before any is built."""
    try:
        data = read_bounded(path.parent, path.name, max_predictions_bytes(expected, num_classes))
    except HostileOutput as exc:
        raise InvalidPredictions(str(exc)) from None
    if data is None:
        raise InvalidPredictions("no predictions were written")
    body = data.strip()
    if not body.startswith(b"[") or not body.endswith(b"]"):
        try:  # only to say what it is instead: small (see the bound), and bounded again
            other = parse_json(data, path.name, max_depth=4, max_items=64)
        except HostileOutput as exc:
            raise InvalidPredictions(f"predictions are not valid JSON: {exc}") from None
        raise InvalidPredictions(
            f"expected {expected} predictions, got a JSON {type(other).__name__}"
        )
    inner = body[1:-1]
    got = inner.count(b",") + 1 if inner.strip() else 0
    if got != expected:
        raise InvalidPredictions(f"expected {expected} predictions, got {got}")
    values = []
    for item in inner.split(b","):
        match = _INDEX.fullmatch(item)
        if match is None or int(match[1]) >= num_classes:
            raise InvalidPredictions(f"predictions must be class indices in [0, {num_classes})")
        values.append(int(match[1]))
    return torch.tensor(values, dtype=torch.long)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    if len(predictions) != len(labels) or len(labels) == 0:
        raise InvalidPredictions(f"{len(predictions)} predictions for {len(labels)} labels")
    return int((predictions == labels).sum()) / len(labels)
