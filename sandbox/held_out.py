"""The held-out test split dressed as a prepared dataset, for the final test only.

`held_out_view(dataset)` returns a prepared dataset (`<root>/test_view/`) with the same training
images and labels as `dataset`, whose "validation" images are `dataset`'s held-out test images and
whose private "validation" labels are the test labels. An ordinary `Evaluator` given this view
trains a candidate as in the search and scores it on the test split, while the sandbox still gets
only a public half and the labels never leave the host.

The view lives beside the dataset's `public/` and `private/` halves, never inside `public/`, so the
search's sandboxes, which get `public/` alone, cannot see a test image. Files are hard links where
the filesystem allows (no copy of the data), built in a temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from sandbox.data import PreparedDataset

VIEW_DIR = "test_view"


def held_out_view(dataset: PreparedDataset) -> PreparedDataset:
    """The view of `dataset` whose validation split is its test split (built once)."""
    final = dataset.root / VIEW_DIR
    if _is_whole(final):
        return PreparedDataset.load(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{VIEW_DIR}.", dir=dataset.root))
    try:
        build = tmp / "build"
        public, private = build / "public", build / "private"
        public.mkdir(parents=True)
        private.mkdir()
        for name in ("train_images.pt", "train_labels.pt"):
            _link(dataset.public_dir / name, public / name)
        _link(dataset.private_dir / "test_images.pt", public / "val_images.pt")
        _link(dataset.private_dir / "test_labels.pt", private / "val_labels.pt")
        (private / "meta.json").write_text(json.dumps({"n_test": 0}) + "\n")
        meta = {**dataset.meta, "n_val": dataset.n_test, "view": "test"}
        (public / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks it whole
        try:
            build.rename(final)
        except OSError:
            if not _is_whole(final):  # a twin process finished first: its view is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PreparedDataset.load(final)


def _is_whole(root: Path) -> bool:
    try:
        meta = json.loads((root / "public" / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("view") == "test"


def _link(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another filesystem, or links not allowed: copy
        shutil.copyfile(source, dest)
