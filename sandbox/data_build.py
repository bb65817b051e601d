"""Turning a loaded dataset into the prepared layout: seeded splits, statistics, files.

See `sandbox.data` for the layout; this module only writes it into a fresh directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sandbox.data_sources import RawData

FORMAT = 2  # 2: the training split is stored shuffled
MNIST5K_TEST = 1000


def _carve(n: int, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split range(n) at random into (k indices, the other n - k), each sorted."""
    perm = torch.randperm(n, generator=gen)
    return perm[:k].sort().values, perm[k:].sort().values


def _tenth(n: int) -> int:
    return max(1, round(n / 10))


def _channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale, accumulated in chunks."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), 1024):
        x = images[start : start + 1024].to(torch.float64).div_(255.0)
        x = x.transpose(0, 1).reshape(channels, -1)
        total += x.sum(dim=1)
        squares += x.square().sum(dim=1)
    count = images.numel() / channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt()
    return [float(v) for v in mean], [float(v) for v in std]


def _save(tensor: torch.Tensor, path: Path) -> None:
    # A view would drag its whole backing storage into the file: store a compact copy.
    compact = tensor.contiguous()
    if compact.untyped_storage().nbytes() != compact.numel() * compact.element_size():
        compact = compact.clone()
    torch.save(compact, path)


def _write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def build(name: str, raw: RawData, dest: Path, val_size: int | None, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    pool_x, pool_y = raw.train_images, raw.train_labels
    test_x, test_y = raw.test_images, raw.test_labels
    if test_x is None or test_y is None:  # no official test split: carve it from the pool first
        n_test = MNIST5K_TEST if name == "mnist5k" else _tenth(len(pool_y))
        if n_test >= len(pool_y) - 1:
            raise ValueError(f"{name} has {len(pool_y)} images: too few to split")
        test_idx, rest = _carve(len(pool_y), n_test, gen)
        test_x, test_y = pool_x[test_idx], pool_y[test_idx]
        pool_x, pool_y = pool_x[rest], pool_y[rest]
    n_val = val_size if val_size is not None else _tenth(len(pool_y))
    if not 0 < n_val < len(pool_y):
        raise ValueError(f"val_size must be between 1 and {len(pool_y) - 1}, not {n_val}")
    val_idx, train_idx = _carve(len(pool_y), n_val, gen)
    # Stored in random order, not the source's: a source sorted by class (mnist5k's CSV) would
    # otherwise make NASLOOP_TRAIN_LIMIT=N train on the first classes only.
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    train_x, train_y = pool_x[train_idx], pool_y[train_idx]
    mean, std = _channel_stats(train_x)
    c, h, w = (int(v) for v in train_x.shape[1:])
    meta = {
        "name": name,
        "input_shape": [c, h, w],
        "num_classes": len(raw.classes),
        "classes": raw.classes,
        "n_train": len(train_y),
        "n_val": n_val,
        "mean": mean,
        "std": std,
        "flip": raw.flip,
        "crop_pad": {32: 4, 28: 2}.get(h, 0) if h == w else 0,
        "seed": seed,
        "offline": raw.offline,
        "format": FORMAT,
    }
    public, private = dest / "public", dest / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    _save(train_x, public / "train_images.pt")
    _save(train_y, public / "train_labels.pt")
    _save(pool_x[val_idx], public / "val_images.pt")
    _save(pool_y[val_idx], private / "val_labels.pt")
    _save(test_x, private / "test_images.pt")
    _save(test_y, private / "test_labels.pt")
    _write_json({"n_test": len(test_y)}, private / "meta.json")
    _write_json(meta, public / "meta.json")  # written last: its presence marks a whole build
