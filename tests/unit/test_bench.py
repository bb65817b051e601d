"""bench.eval_speed end to end on a small mnist5k slice, and the paper baseline's data pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.paper_trainer import TensorImages, make_transform
from tests.helpers.paths import ROOT


def test_eval_speed_writes_both_methods_and_ratios(tmp_path: Path) -> None:
    # A subprocess: the benchmark sets torch's thread count, which must not leak into other tests.
    out = tmp_path / "speed.json"
    command = [sys.executable, "-m", "bench.eval_speed", "--data-dir", str(tmp_path / "data")]
    command += ["--seeds", "0", "--train-limit", "512", "--device", "cpu", "--json", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratio" in proc.stdout and "mean" in proc.stdout

    result = json.loads(out.read_text())
    assert (result["dataset"], result["n_train"], result["synthetic"]) == ("mnist5k", 512, False)
    assert result["machine"]["threads"] == 2 and result["machine"]["cpu_count"] >= 1
    assert result["machine"]["torch"] == torch.__version__
    assert [row["seed"] for row in result["seeds"]] == [0]
    for row in [*result["seeds"], result["mean"]]:
        for method in ("paper", "ours"):
            figures = row[method]
            assert figures["train_s"] > 0 and figures["wall_s"] >= figures["train_s"]
            assert 0.0 <= figures["accuracy"] <= 1.0
        for ratio in ("train_time_ratio", "wall_time_ratio"):
            assert row[ratio] > 0
        delta = 100 * (row["ours"]["accuracy"] - row["paper"]["accuracy"])
        assert abs(row["accuracy_delta_points"] - delta) < 1e-9
    assert result["mean"]["ours"]["startup_s"] > 0  # the runner pays for its own interpreter


def test_paper_dataset_serves_grey_and_colour_pil_images() -> None:
    meta = {"input_shape": [1, 8, 8], "crop_pad": 2, "flip": True, "mean": [0.5], "std": [0.25]}
    grey = torch.arange(3 * 64, dtype=torch.uint8).view(3, 1, 8, 8)
    labels = torch.tensor([2, 0, 1])
    plain: Any = TensorImages(grey, labels, lambda image: image)  # yields PIL images, untouched
    assert len(plain) == 3 and plain[0][0].mode == "L" and plain[0][1] == 2
    assert plain[1][0].tobytes() == grey[1, 0].numpy().tobytes()  # pixels survive the trip

    colour = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    rgb: Any = TensorImages(colour, labels[:2], lambda image: image)[1][0]
    assert rgb.mode == "RGB"
    assert torch.equal(torch.from_numpy(np.array(rgb)).permute(2, 0, 1), colour[1])

    x, _ = TensorImages(grey, labels, make_transform(meta, train=False))[1]
    expected = (grey[1].float() / 255 - 0.5) / 0.25
    assert x.shape == (1, 8, 8) and torch.allclose(x, expected, atol=1e-6)
    x, _ = TensorImages(grey, labels, make_transform(meta, train=True))[1]
    assert x.shape == (1, 8, 8)  # crop with padding keeps the side
