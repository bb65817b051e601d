import json

import pytest
import torch

from sandbox.scoring import InvalidPredictions, accuracy, read_predictions


def test_accuracy_against_host_labels(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([0, 1, 2, 2]))
    predictions = read_predictions(path, expected=4, num_classes=3)
    assert accuracy(predictions, torch.tensor([0, 1, 2, 0])) == 0.75


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no predictions"),
        ("not json", "not valid JSON"),
        (json.dumps({"val_accuracy": 1.0}), "expected 4 predictions"),
        (json.dumps([0, 1, 2]), "expected 4 predictions, got 3"),
        (json.dumps([0, 1, 2, 3]), "class indices"),
        (json.dumps([0, 1, True, 2]), "class indices"),
        (json.dumps([0, 1, 1.5, 2]), "class indices"),
    ],
)
def test_bad_predictions_are_rejected(tmp_path, content: str | None, words: str) -> None:
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidPredictions, match=words):
        read_predictions(path, expected=4, num_classes=3)
