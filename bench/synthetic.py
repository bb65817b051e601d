"""A learnable, CIFAR-10-shaped synthetic dataset for benchmarks on machines without CIFAR.

Random noise would time the trainers honestly but make "equal accuracy" meaningless (chance
either way). These images carry a class signal a CNN must learn: each class has a smooth random
colour pattern, and every image is that pattern plus an as strong smooth pattern of its own plus
pixel noise, so one epoch of the reference CNN reaches about 90% (chance 10%). Sizes are
CIFAR-10's: 50,000 train (45,000 + 5,000 validation carved as for CIFAR) and a token test split.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from sandbox.data import PreparedDataset
from sandbox.data_build import build
from sandbox.data_sources import RawData

NAME = "synthetic-cifar"
N_TRAIN, N_VAL, CLASSES = 50_000, 5_000, 10
# Relative strengths, tuned so that one epoch of the reference CNN lands near 90%: where accuracy
# is still climbing steeply (~60%) two runs that differ only in data order and augmentation draws
# differ by 3-5 points, which would hide any real difference between two trainers.
SIGNAL, DISTRACTOR, NOISE = 1.0, 1.0, 1.0


def smooth_patterns(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, 32, 32) unit-variance patterns: 4x4 random colours, bilinearly upsampled."""
    coarse = torch.randn(n, 3, 4, 4, generator=gen)
    fine = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    return fine / fine.std()


def make_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 (3, 32, 32) images and their labels, in chunks to keep memory flat."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = smooth_patterns(CLASSES, gen)
    labels = torch.randint(0, CLASSES, (n,), generator=gen)
    images = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    for start in range(0, n, 5000):
        y = labels[start : start + 5000]
        x = SIGNAL * prototypes[y] + DISTRACTOR * smooth_patterns(len(y), gen)
        x += NOISE * torch.randn(x.shape, generator=gen)
        images[start : start + len(y)] = (128 + 40 * x).clamp(0, 255).to(torch.uint8)
    return images, labels


def synthetic_cifar(data_dir: Path, n_train: int = N_TRAIN) -> PreparedDataset:
    """The dataset, prepared like any other under `data_dir` (built once, then cached)."""
    root = data_dir / "prepared" / f"{NAME}-{n_train}-s{SIGNAL}-d{DISTRACTOR}-n{NOISE}"
    if not (root / "public" / "meta.json").is_file():
        images, labels = make_images(n_train)
        raw = RawData(
            train_images=images,
            train_labels=labels,
            # a token test split, so that build() does not carve one out of the training pool
            test_images=images[:1].clone(),
            test_labels=labels[:1].clone(),
            classes=[str(c) for c in range(CLASSES)],
            flip=True,
            offline=True,
        )
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}.", dir=root.parent))
        build(NAME, raw, tmp / "build", min(N_VAL, n_train // 10), seed=0)
        (tmp / "build").rename(root)
        shutil.rmtree(tmp)
    return PreparedDataset.load(root)
