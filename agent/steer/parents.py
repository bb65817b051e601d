"""Which trained network the Generator is shown to change (`--parent`).

With the best network shown in full, a 0.5B code model copied it verbatim (issue 25): every new
network was the same one again. `best` (the default) still shows the best so far. `tournament`
shows one of the run's good networks instead: the top `POOL` networks that trained, best first,
one per set of layers (agent/replies/layers.py's `signature`; a program whose layers cannot be
read counts by its code hash), and of `SIZE` of them drawn with replacement the better one. With
four in the pool the best is shown 7 times in 16, the second 5, the third 3, the fourth once.

The draw reads the archive (candidates before the round's first iteration, so every branch of a
parallel round and the Improver before it see the same pool) and is seeded by the run seed plus
that iteration: a run, and a resumed run, draw the same parents.
"""

from __future__ import annotations

import json
import random

from agent.archive.candidates import RunArchive
from agent.replies.layers import signature
from agent.state import Candidate

POOL = 4  # the top trained networks with different layers that the tournament draws from
SIZE = 2  # networks drawn (with replacement); the better one is shown


def pool(archive: RunArchive, before: int, size: int = POOL) -> list[Candidate]:
    """The best `size` networks trained before iteration `before`, one per set of layers, best
    first."""
    chosen: list[Candidate] = []
    kinds: set[object] = set()
    for row in archive.trained(before):
        code = archive.code_at(row["iteration"]) or ""
        key = signature(code) or row["code_hash"]
        if key in kinds:
            continue
        kinds.add(key)
        result = json.loads(row["result"])
        chosen.append(Candidate(iteration=row["iteration"], code=code, result=result))
        if len(chosen) >= size:
            break
    return chosen


def tournament(networks: list[Candidate], seed: int) -> Candidate | None:
    """The better of `SIZE` networks drawn with replacement from `networks` (best first)."""
    if not networks:
        return None
    draw = random.Random(seed)
    return networks[min(draw.randrange(len(networks)) for _ in range(SIZE))]
