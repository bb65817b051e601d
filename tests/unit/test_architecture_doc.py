"""docs/architecture.md matches the tree: every path it names exists, every package is in it."""

from __future__ import annotations

import re

from tests.helpers.paths import ROOT

DOC = ROOT / "docs" / "architecture.md"
ROOMS = ("graphs", "agent", "tools", "sandbox", "bench", "tests")


def named_paths(text: str) -> set[str]:
    """`room/...` paths the page names in backticks (files and folders)."""
    rooms = "|".join(ROOMS)
    found = re.findall(rf"`((?:{rooms})/[\w./]*)`", text)
    return {p.rstrip("/") for p in found}


def test_every_path_the_page_names_exists() -> None:
    paths = named_paths(DOC.read_text(encoding="utf-8"))
    assert len(paths) > 40  # the page names the rooms and their modules
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


def test_every_package_is_on_the_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    packages = {
        str(init.parent.relative_to(ROOT))
        for room in ("graphs", "agent", "tools", "sandbox")
        for init in (ROOT / room).rglob("__init__.py")
    }
    assert len(packages) >= 6
    assert sorted(p for p in packages if f"`{p}/`" not in text) == []


def test_the_check_would_catch_a_stale_name() -> None:
    assert named_paths("see `agent/gone.py` and `sandbox/backends/`") == {
        "agent/gone.py",
        "sandbox/backends",
    }
