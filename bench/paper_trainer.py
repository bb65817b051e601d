"""The reference paper's way of training a candidate, rebuilt as the baseline for bench.eval_speed.

Per-sample PIL images from a torchvision dataset object, torchvision transforms, a DataLoader with
two worker processes, SGD with a cosine schedule stepped once per epoch. `sandbox/inside/runner.py` trains
with the same hyperparameters (PROTOCOL) but keeps the data as uint8 tensors and augments whole
batches, with no DataLoader; this module exists only to measure that difference.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import VisionDataset

# The paper's protocol, shared with the runner's config by bench.eval_speed so both train alike.
PROTOCOL: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 128,
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
}
WORKERS = 2  # DataLoader worker processes, as in the paper's code
EVAL_BATCH_SIZE = 128


@dataclass(frozen=True)
class Outcome:
    predictions: list[int]  # one class per validation image; the caller scores them
    train_s: float  # the epoch loop, including the DataLoader's worker start
    predict_s: float  # the validation pass, including its own worker start
    wall_s: float  # everything: loading tensors, datasets, net, training, validation
    # Before the trainer's own code ran (interpreter, imports): 0 here, as this runs in a process
    # that has already imported torch; bench.eval_speed fills it in for the runner's subprocess.
    startup_s: float = 0.0
    precision: str = "fp32"  # what the training ran in (the paper's trainer: always fp32)


class TensorImages(VisionDataset):  # type: ignore[misc]  # torchvision ships no type hints
    """uint8 (N, C, H, W) tensors served one PIL image at a time, like torchvision's CIFAR10."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable[..., Any]):
        super().__init__(root=None, transform=transform)
        # PIL wants (H, W, C), or (H, W) for grey images, which Image.fromarray then opens as "L".
        array = images.permute(0, 2, 3, 1).numpy()
        self.images = np.ascontiguousarray(array[..., 0] if array.shape[-1] == 1 else array)
        self.labels = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index])  # mode "L" (grey) or "RGB"
        return self.transform(image), self.labels[index]


def make_transform(meta: dict[str, Any], train: bool) -> T.Compose:
    """RandomCrop + RandomHorizontalFlip (as the dataset meta asks) + ToTensor + Normalize."""
    _, h, w = meta["input_shape"]
    steps: list[Any] = []
    if train and meta["crop_pad"]:
        steps.append(T.RandomCrop((h, w), padding=meta["crop_pad"]))
    if train and meta["flip"]:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(meta["mean"], meta["std"])]
    return T.Compose(steps)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_net(make_net: Callable[[], nn.Module], meta: dict[str, Any], seed: int) -> nn.Module:
    """The net, with lazy layers materialised by the same random draws the runner makes.

    The runner seeds, builds the net, then runs a (2, C, H, W) randn batch through it in eval mode
    (its shape check). Repeating that here gives both methods identical initial weights, so they
    differ only in data order and augmentation.
    """
    seed_everything(seed)
    net = make_net()
    net.eval()
    with torch.no_grad():
        net(torch.randn(2, *meta["input_shape"]))
    return net


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_and_predict(
    make_net: Callable[[], nn.Module],
    public_dir: Path,
    meta: dict[str, Any],
    seed: int,
    train_limit: int | None = None,
    device: torch.device | None = None,
) -> Outcome:
    """Train one net for PROTOCOL["epochs"] the paper's way and predict the validation split."""
    device = device or torch.device("cpu")
    if device.type == "cuda":  # the paper's code asked for deterministic cuDNN
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    started = time.perf_counter()

    def load(name: str) -> torch.Tensor:
        tensor: torch.Tensor = torch.load(public_dir / name, weights_only=True, mmap=True)
        return tensor

    images, labels = load("train_images.pt"), load("train_labels.pt")
    if train_limit:
        images, labels = images[:train_limit], labels[:train_limit]
    val_images = load("val_images.pt")
    train_set = TensorImages(images, labels, make_transform(meta, train=True))
    # The validation labels stay with the caller: the loader gets placeholders, the caller scores.
    placeholders = torch.zeros(len(val_images), dtype=torch.long)
    val_set = TensorImages(val_images, placeholders, make_transform(meta, train=False))
    net = build_net(make_net, meta, seed).to(device)
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=PROTOCOL["lr"],
        momentum=PROTOCOL["momentum"],
        weight_decay=PROTOCOL["weight_decay"],
    )
    # Stepped once per epoch as in the paper's code: over one epoch the rate stays at PROTOCOL lr.
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=PROTOCOL["epochs"])
    loader: DataLoader[tuple[torch.Tensor, int]] = DataLoader(
        train_set,
        batch_size=PROTOCOL["batch_size"],
        shuffle=True,
        num_workers=WORKERS,
        generator=torch.Generator().manual_seed(seed),  # fixes the order and the workers' seeds
    )

    t = time.perf_counter()
    for _ in range(PROTOCOL["epochs"]):
        net.train()
        for x, y in loader:  # x: (B, C, H, W) float, normalised
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        scheduler.step()
    _sync(device)
    train_s = time.perf_counter() - t

    t = time.perf_counter()
    net.eval()
    predictions: list[int] = []
    with torch.no_grad():
        for x, _ in DataLoader(val_set, batch_size=EVAL_BATCH_SIZE, num_workers=WORKERS):
            predictions += net(x.to(device)).argmax(1).tolist()
    _sync(device)
    predict_s = time.perf_counter() - t
    return Outcome(predictions, train_s, predict_s, time.perf_counter() - started)
