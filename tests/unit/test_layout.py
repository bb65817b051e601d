"""The house rules of the source tree, read from the files (docs/architecture.md explains them):
small modules, imports flowing one way (graphs → agent → tools → sandbox), no import cycle even
through an import inside a function, no `_private` name imported from another module, and agent/'s
top level kept for the graph's own rooms."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PACKAGES = ("graphs", "agent", "tools", "sandbox")
MAX_LINES = 400
TRAVELS_ALONE = {"sandbox/inside/runner.py"}  # the in-sandbox runner: one self-contained file
MAX_AGENT_TOP = 12  # files at agent/'s top level: settings, state, graph, nodes, search, the CLI
# What each room may import of ours (its own package included)
MAY_IMPORT = {
    "graphs": {"graphs", "agent"},
    "agent": {"agent", "tools", "sandbox"},
    "tools": {"tools", "sandbox"},
    "sandbox": {"sandbox"},
}
# The one documented exception: the whole search as a tool imports the search, lazily
LAZY_EXCEPTIONS = {("tools/search.py", "agent")}


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> list[tuple[str, bool]]:
    """(module imported, at module level?) for each import of ours in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # module level: a statement of the module's body (an import under `if TYPE_CHECKING:` or in
    # a function runs later or never, so it cannot close a cycle at import time)
    at_top = {id(statement) for statement in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        top = id(node) in at_top
        if top_level_only and not top:
            continue
        found += [(n, top) for n in names if n.split(".")[0] in PACKAGES]
    return found


def test_no_product_module_is_over_400_lines() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules()
    }
    assert len(sizes) > 60  # the walk found the tree
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in TRAVELS_ALONE}
    assert too_long == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    wrong = []
    for path in (ROOT / package).rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        for name, top in imports(path, top_level_only=False):
            room = name.split(".")[0]
            if room in MAY_IMPORT[package]:
                continue
            if (rel, room) in LAZY_EXCEPTIONS and not top:
                continue
            wrong.append(f"{rel} imports {name}")
    assert wrong == []


def import_graph(paths: list[Path], top_level_only: bool) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (`from a.b import c` may name a module a.b.c or
    a name in a.b: the longest known module wins)."""
    known = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        targets = set()
        for name, _ in imports(path, top_level_only):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
        graph[module_name(path)] = targets - {module_name(path)}
    return graph


def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    # An import inside a function hides a cycle from Python's import machinery, not from a
    # reader: two modules that need each other are one concern, or share a third. Importing a
    # package's own __init__ from inside it is no cycle (the package imports its parts).
    graph = import_graph(modules(), top_level_only=False)
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert find_cycle(graph) is None, find_cycle(graph)


def private_imports(path: Path) -> list[str]:
    """`module.name` for each `_private` name this file imports from another module of ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


def test_no_module_imports_a_private_name_from_another() -> None:
    found = {str(p.relative_to(ROOT)): private_imports(p) for p in modules()}
    assert {name: names for name, names in found.items() if names} == {}


def test_agent_top_level_holds_only_the_graphs_own_rooms() -> None:
    top = sorted(p.name for p in (ROOT / "agent").glob("*.py"))
    assert len(top) <= MAX_AGENT_TOP, top
    assert {"settings.py", "state.py", "graph.py", "nodes.py", "search.py", "run.py"} <= set(top)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph` (module -> modules it imports), or None (depth-first)."""
    done: set[str] = set()

    def visit(path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                found = visit([*path, nxt])
                if found:
                    return found
        done.add(path[-1])
        return None

    for node in sorted(graph):
        if node not in done and (found := visit([node])):
            return found
    return None


def test_the_rules_catch_what_they_guard(tmp_path: Path) -> None:
    """The checks fail when the thing they guard is broken (a sandbox module importing agent)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import agent.settings\n\ndef f():\n    from tools import search\n")
    assert imports(bad, top_level_only=True) == [("agent.settings", True)]
    assert imports(bad, top_level_only=False) == [("agent.settings", True), ("tools", False)]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_a_planted_function_level_cycle_and_private_import_are_caught(tmp_path: Path) -> None:
    """The two rules this layout added, each shown failing on a planted case: two sandbox
    modules that import each other, one of them inside a function (as the image and the Docker
    backend once did), and a module that imports another's `_private` helper."""
    package = tmp_path / "sandbox"
    package.mkdir()
    (package / "image.py").write_text("def build():\n    from sandbox.docker import engine\n")
    (package / "docker.py").write_text(
        "from sandbox.image import build\nfrom sandbox.x import _y\n"
    )
    planted = sorted(package.glob("*.py"))
    names = {p: "sandbox." + p.stem for p in planted}
    graph = {
        names[p]: {n.rpartition(".")[0] if n.count(".") > 1 else n for n, _ in imports(p, False)}
        for p in planted
    }
    assert find_cycle(graph) == ["sandbox.docker", "sandbox.image", "sandbox.docker"]
    top_only = {names[p]: {n for n, _ in imports(p, True)} for p in planted}
    assert find_cycle(top_only) is None  # the old module-level rule missed it
    assert private_imports(package / "docker.py") == ["sandbox.x._y"]
    assert private_imports(package / "image.py") == []
