"""The LLM-side fixes of a failed program: what each one is asked, and how many the budget allows.

When an iteration's program fails (lint, dry run or training) and no mechanical fix applies, the
check step (agent/check/step.py) may ask the Generator up to `repair_attempts` more times, each time
with the strategy `fix_order` names for that turn (the last one repeating):

- `repair`: the failing module with the failing lines located and numbered, and its shape trace
  (agent/prompts/fix.py), at the iteration's own temperature;
- `resample`: the iteration's own prompt plus a note naming the error to avoid, sampled hotter
  (RESAMPLE_TEMPERATURE_STEP per resample) with another seed.

Each answer is an archived attempt (source `repair` or `resample`) that goes through the same
cascade. An answer that is a program already seen is a `duplicate` attempt, and its strategy is
not asked again in the iteration: a model that returns the same mistake when asked to repair
would return it again. Each is one Generator call: it has its row in the `calls` table and counts
in the run's `--llm-calls` budget, and none is asked once the budget is spent.

The default is no LLM-side fix (`repair_attempts` 0): issue 15's rule changes a default only on
the search-quality benchmark's figures (bench/search_quality.py's `repair` and `resample`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

Strategy = Literal["repair", "resample"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
RESAMPLE_TEMPERATURE_STEP = 0.3  # each resample of an iteration is this much hotter


@dataclass(frozen=True)
class FixRequest:
    """One LLM-side fix to ask for."""

    strategy: str  # repair | resample
    tries: int  # 1-based: how often this strategy has been asked in this iteration, this one too
    attempt: int  # the number its answer's attempt gets (the key of its `calls` row)
    code: str | None  # the failing program (None: the last reply held no code)
    failure: dict[str, Any]  # its result
    stage: str  # where it failed: lint, dry_run, train, none


def fix_plan(order: str, calls: int) -> tuple[str, ...]:
    """The strategy of each of an iteration's `calls` LLM-side fixes: `order`'s names in turn,
    the last one repeating ("repair,resample" and 3: repair, resample, resample)."""
    names = [name.strip() for name in order.split(",") if name.strip()]
    return tuple(names[min(n, len(names) - 1)] for n in range(calls)) if names else ()


def check_fix_order(value: str) -> str:
    """`value` normalised ("repair,resample"); ValueError naming the fix when it is not one."""
    names = [name.strip().lower() for name in str(value).split(",") if name.strip()]
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown or not names:
        given = ", ".join(repr(name) for name in unknown) or "nothing"
        raise ValueError(
            f"unknown LLM-side fix {given}: use repair, resample, or both in the order to try "
            "them, e.g. repair,resample"
        )
    return ",".join(names)


def resample_temperature(base: float, tries: int) -> float:
    return round(min(2.0, base + RESAMPLE_TEMPERATURE_STEP * tries), 3)


def calls_left(budget: int | None, spent: Callable[[], int]) -> Callable[[], int | None]:
    """How many LLM calls the run's budget still allows (None: no budget), `spent` (the calls of
    the run so far, this iteration's included) read at each ask. In a parallel round the other
    branches' unfinished iterations are not counted yet: the budget is kept per branch there."""

    def left() -> int | None:
        return None if budget is None else budget - spent()

    return left


def room_for_advice(budget: int | None, spent: int) -> bool:
    """Whether a budget of calls leaves room for the Improver and the Generator's next ask; with
    one call left it goes to the Generator, so that a budget is spent exactly, never overspent."""
    return budget is None or spent + 2 <= budget
