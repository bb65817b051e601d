"""Pieces of the in-sandbox runner that need no candidate: augmentation and classification."""

from __future__ import annotations

import pytest
import torch

from sandbox.inside import runner


def test_augment_keeps_shape_and_is_identity_when_off() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (16, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(runner.augment(x, flip=False, pad=0, gen=gen), x)
    out = runner.augment(x, flip=True, pad=2, gen=gen)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_crop_is_a_translation_of_each_image() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.arange(4 * 6 * 6, dtype=torch.float32).view(4, 1, 6, 6) + 1
    out = runner.augment(x, flip=False, pad=1, gen=gen)
    for img, src in zip(out, x, strict=True):
        inner = img[0][img[0] > 0]  # pixels that came from the image, not the zero padding
        assert set(inner.tolist()) <= set(src.flatten().tolist())
        assert len(inner) >= 25  # at most one row and one column shifted out


@pytest.mark.parametrize(
    ("exc", "phase", "kind"),
    [
        (MemoryError(), "train", "oom"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "train", "oom"),
        (
            RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)"),
            "forward",
            "shape",
        ),
        (ModuleNotFoundError("No module named 'x'"), "import", "import"),
        (ValueError("bad value"), "train", "runtime"),
        (SystemExit(0), "train", "runtime"),
    ],
)
def test_exceptions_are_classified(exc: BaseException, phase: str, kind: str) -> None:
    assert runner.classify_exception(exc, phase).kind == kind


def test_runner_and_host_agree_on_failure_kinds() -> None:
    from typing import get_args

    from sandbox.result import FAILURE_KINDS, FailureKind

    assert tuple(runner.FAILURE_KINDS) == FAILURE_KINDS
    # no_code is the search's own kind: a FailureKind, but never one a runner's report may claim
    every_kind = [kind for part in get_args(FailureKind) for kind in get_args(part)]
    assert "no_code" in every_kind and "no_code" not in FAILURE_KINDS
    assert "duplicate" in every_kind and "duplicate" not in FAILURE_KINDS  # the novelty check's
