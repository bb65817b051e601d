"""The family tree of a run's candidates: graph data from the archive, then a PNG.

One node per archived candidate; the tree follows each candidate's first edge (the module it
fixed, else the best it was shown; `Parents`) and draws the second (the last one it was also
shown) lighter. The path from the root to the best candidate is highlighted, failures are
marked by kind. `lineage_graph` is the data the picture is drawn from, so a test can check it
against the archive without reading pixels.

Layout: x is the iteration (time runs left to right); y gives each subtree its own band, in the
order a depth-first walk meets the leaves, so edges along the first parent never cross.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from agent.archive.lineage import Parents
from agent.results.plots import pyplot


class Node(TypedDict):
    iteration: int
    kind: str
    val_accuracy: float | None
    ok: bool
    y: float  # the node's band in the picture
    on_best_path: bool


class LineageGraph(TypedDict):
    nodes: list[Node]
    edges: list[tuple[int, int]]  # (parent, child) along the first edge
    light_edges: list[tuple[int, int]]  # (also shown, child): the second, lighter edge
    best_path: list[int]  # root → best, along first edges (empty without a success)


def lineage_graph(rows: list[dict[str, Any]], parents: dict[int, Parents]) -> LineageGraph:
    """The tree of the archived candidates `rows`; edges only between archived candidates.

    A run archived before lineage was recorded has no parents: each node then hangs from the
    one before it, the order the classic loop showed them in.
    """
    archived = {r["iteration"]: r for r in rows}
    first: dict[int, int] = {}
    light: list[tuple[int, int]] = []
    for it in archived:
        edge = parents.get(it)
        parent = (
            edge["parent"] if edge else (it - 1 if not parents and it - 1 in archived else None)
        )
        if parent is not None and parent in archived and parent < it:
            first[it] = parent
        also = edge["also_shown"] if edge else None
        if also is not None and also in archived and also < it and also != first.get(it):
            light.append((also, it))
    children: dict[int | None, list[int]] = {}
    for it in sorted(archived):
        children.setdefault(first.get(it), []).append(it)
    # depth-first, without recursion (a run of fix after fix is one long chain): leaves take
    # the next band in the order they are met; a parent sits at its first child's band
    band: dict[int, float] = {}
    leaves = 0
    stack: list[tuple[int, bool]] = [(r, False) for r in reversed(children.get(None, []))]
    while stack:
        it, expanded = stack.pop()
        kids = children.get(it, [])
        if not kids:
            band[it] = float(leaves)
            leaves += 1
        elif expanded:
            band[it] = band[kids[0]]
        else:
            stack.append((it, True))
            stack.extend((k, False) for k in reversed(kids))
    ok = [r for r in rows if r["status"] == "ok" and r["val_accuracy"] is not None]
    best = max(ok, key=lambda r: (r["val_accuracy"], -r["iteration"]), default=None)
    path: list[int] = []
    node = best["iteration"] if best else None
    while node is not None:
        path.append(node)
        node = first.get(node)
    on_path = set(path)
    nodes = [
        Node(
            iteration=it,
            kind=archived[it]["kind"],
            val_accuracy=archived[it]["val_accuracy"],
            ok=archived[it]["status"] == "ok",
            y=band[it],
            on_best_path=it in on_path,
        )
        for it in sorted(archived)
    ]
    return LineageGraph(
        nodes=nodes,
        edges=sorted((p, c) for c, p in first.items()),
        light_edges=sorted(light),
        best_path=path[::-1],
    )


_KIND_MARKERS = "sDv^<>ph*P"
_KIND_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:orange")


def plot_lineage(graph: LineageGraph, path: Path, title: str = "") -> None:
    plt = pyplot()
    nodes = {n["iteration"]: n for n in graph["nodes"]}
    height = max(3.0, min(14.0, 0.28 * (1 + max((n["y"] for n in nodes.values()), default=0))))
    fig, ax = plt.subplots(figsize=(10, height + 1.2))
    for a, b in graph["light_edges"]:
        ax.plot([a, b], [nodes[a]["y"], nodes[b]["y"]], color="0.75", lw=0.8, ls=":", zorder=1)
    best_edges = set(zip(graph["best_path"], graph["best_path"][1:], strict=False))
    for a, b in graph["edges"]:
        on_best = (a, b) in best_edges
        ax.plot(
            [a, b, b],
            [nodes[a]["y"], nodes[a]["y"], nodes[b]["y"]],
            color="tab:green" if on_best else "0.45",
            lw=2.4 if on_best else 1.0,
            zorder=2 if on_best else 1,
        )
    ok = [n for n in nodes.values() if n["ok"]]
    ax.scatter(
        [n["iteration"] for n in ok],
        [n["y"] for n in ok],
        s=36,
        color="tab:blue",
        label="trained",
        zorder=3,
    )
    kinds = sorted({n["kind"] for n in nodes.values() if not n["ok"]})
    for i, kind in enumerate(kinds):
        failed = [n for n in nodes.values() if n["kind"] == kind and not n["ok"]]
        ax.scatter(
            [n["iteration"] for n in failed],
            [n["y"] for n in failed],
            s=36,
            marker=_KIND_MARKERS[i % len(_KIND_MARKERS)],
            color=_KIND_COLORS[i % len(_KIND_COLORS)],
            label=f"{kind} ({len(failed)})",
            zorder=3,
        )
    best = [nodes[i] for i in graph["best_path"][-1:]]
    if best:
        acc = best[0]["val_accuracy"]
        ax.scatter(
            [best[0]["iteration"]],
            [best[0]["y"]],
            s=180,
            facecolors="none",
            edgecolors="tab:green",
            lw=2,
            label=f"best ({acc:.4f}) and its path" if acc is not None else "best",
            zorder=4,
        )
    ax.set_yticks([])
    ax.invert_yaxis()  # the first root's branch on top
    ax.set_xlabel("iteration")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "candidate lineage (dotted: also shown)")
    if nodes:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=4, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
