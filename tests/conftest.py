"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest

from sandbox.data import PreparedDataset, prepare


@pytest.fixture(scope="session")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """The offline dataset, prepared once per test session (about half a second)."""
    return prepare("mnist5k", tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def _no_stray_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests see only the NASLOOP_* variables they set themselves, never a developer's .env."""
    import os

    for name in list(os.environ):
        if name.startswith("NASLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.getbasetemp())
