"""docs/architecture.md matches the tree: every path it names exists, every package is in it."""

from __future__ import annotations

import re
from pathlib import Path

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


WALK_STEP = re.compile(r"^(\d+)\. `([\w./]+\.py)` `(\w+)`", re.M)


def walk_steps(text: str) -> list[tuple[int, str, str]]:
    """(number, file, name) for each step of the page's walk of one candidate."""
    section = text.split("## One candidate's walk", 1)[1].split("\n## ", 1)[0]
    return [(int(n), path, name) for n, path, name in WALK_STEP.findall(section)]


def defines(path: Path, name: str) -> bool:
    """Whether the module defines `name` at its top level (function, class or assignment)."""
    pattern = rf"^(?:def|class) {name}\b|^{name}(?:: [^=]+)? = "
    return re.search(pattern, path.read_text(encoding="utf-8"), re.M) is not None


def walk_problems(steps: list[tuple[int, str, str]]) -> list[str]:
    problems = []
    if [n for n, _, _ in steps] != list(range(1, len(steps) + 1)):
        problems.append("steps are not numbered 1..n")
    files = [path for _, path, _ in steps]
    problems += [f"{p} named twice" for p in sorted({p for p in files if files.count(p) > 1})]
    for _, path, name in steps:
        if not (ROOT / path).is_file():
            problems.append(f"{path} does not exist")
        elif not defines(ROOT / path, name):
            problems.append(f"{path} defines no {name}")
    return problems


def test_the_walk_names_each_file_once_in_order_with_a_name_it_defines() -> None:
    steps = walk_steps(DOC.read_text(encoding="utf-8"))
    assert len(steps) >= 30  # from the Generator's reply to the Improver's next prompt
    assert steps[0][1] == "agent/llm/client.py" and steps[-1][1] == "agent/prompts/short.py"
    assert walk_problems(steps) == []


def test_the_walk_check_catches_a_repeat_a_stale_file_and_a_stale_name() -> None:
    planted = [
        (1, "agent/nodes.py", "generate"),
        (2, "agent/nodes.py", "train"),
        (3, "agent/gone.py", "x"),
        (4, "agent/state.py", "no_such_name"),
    ]
    assert walk_problems(planted) == [
        "agent/nodes.py named twice",
        "agent/gone.py does not exist",
        "agent/state.py defines no no_such_name",
    ]
