"""A hotter Generator after it copied (`--copy-heat`): a temperature that rises while the model
copies and falls back once it writes something else.

A candidate copied when it came back a `duplicate` (the novelty check found its program, or its
network, tried before, through every re-ask), or when the layers it builds are those of the
network its prompt showed it to build on (the same `nn.X(...)` calls with the same arguments, in
the same order: agent/replies/layers.py's `signature`; its parent is the `lineage` table's, and
a failed network it was asked to fix counts only through a duplicate: a fix may keep the
layers). The layers are what the archive holds for every candidate, with the novelty check and
the dry run on or off; the dry run's architecture fingerprint is archived only with auto-fix on,
and with novelty on a network whose fingerprint is its parent's already ends as a duplicate.

Each copy in a row, counted back from the round's first iteration, adds `STEP` to the Generator's
temperature for the next call, up to `CAP` (a temperature already above it stays); the first
candidate that differs brings it back to the base. This acts across iterations, on the
iteration's own temperature; the novelty check's re-asks (agent/check/novelty.py) still step up
from it within the iteration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.archive.candidates import RunArchive
from agent.archive.lineage import Parents, read_parents
from agent.replies.layers import signature

STEP = 0.3  # hotter by this per copy in a row
CAP = 1.3  # and no hotter than this
LOOKBACK = 8  # candidates read back at most (the cap is reached well before)


def copied(row: Mapping[str, Any], code: str | None, parent_code: str | None) -> bool:
    """Whether an archived candidate (`row`, its `code`) copied: a duplicate, or the layers of
    `parent_code`, the network it was shown to build on (None: it was shown none)."""
    if row.get("kind") == "duplicate":
        return True
    mine = signature(code)
    return mine is not None and parent_code is not None and mine == signature(parent_code)


def copies_before(archive: RunArchive, before: int) -> int:
    """How many candidates in a row, counted back from iteration `before` - 1, copied."""
    rows = archive.recent(before, LOOKBACK)
    parents = read_parents(archive.run_dir) if rows else {}
    count = 0
    for row in rows:
        if not _row_copied(archive, row, parents):
            break
        count += 1
    return count


def copy_count(archive: RunArchive) -> int:
    """How many of the run's candidates copied (what the search-quality benchmark reports)."""
    parents = read_parents(archive.run_dir)
    return sum(_row_copied(archive, row, parents) for row in archive.rows())


def _row_copied(
    archive: RunArchive, row: Mapping[str, Any], parents: Mapping[int, Parents]
) -> bool:
    edge = parents.get(row["iteration"])
    # a failed network shown to be fixed may keep its layers: only a duplicate of it is a copy
    parent = edge["parent"] if edge and edge["why"] != "fix" else None
    shown = archive.code_at(parent) if parent is not None else None
    return copied(row, archive.code_at(row["iteration"]), shown)


def heated(base: float, copies: int) -> float:
    """The Generator's temperature after `copies` copies in a row."""
    if copies <= 0:
        return base
    return round(max(base, min(CAP, base + STEP * copies)), 3)
