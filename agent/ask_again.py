"""The Generator asked again within one iteration: the novelty check's re-ask, and the LLM-side
fixes of a failed program (a repair request that shows the failing lines, a hotter resample told
which error to avoid). Each call is archived in the `calls` table under the number of the attempt
its answer becomes, and its tokens and seconds are added to the iteration's Generator cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from agent.check import GeneratorCost
from agent.code_reader import extract_code
from agent.llm import ask
from agent.llm_fixes import FixRequest, resample_temperature
from agent.novelty import REASK_SEED_STEP, reask_temperature
from agent.observe import generator_called
from agent.prompts_fix import repair_messages, resample_note
from agent.prompts_short import with_note
from agent.state import TaskInfo


@dataclass
class Again:
    """How one iteration asks its Generator again (built by agent/nodes.py's `again_for`)."""

    chat_at: Callable[[float], Any]  # the Generator's chat client at a given temperature
    prompt: list[BaseMessage]  # the iteration's own Generator prompt
    task: TaskInfo
    temperature: float  # the iteration's Generator temperature (a parallel branch's own)
    seed: int  # the iteration's sampling seed (run seed + iteration)
    retries: int
    run_dir: Path
    iteration: int
    cost: GeneratorCost

    def call(self, attempt: int, messages: list[BaseMessage], temperature: float) -> str | None:
        """One call for attempt `attempt`, archived; the code of its reply, if any. Each attempt
        samples with its own seed: the same prompt and seed would give the same answer."""
        started = time.monotonic()
        reply = ask(
            self.chat_at(temperature),
            messages,
            role="generator",
            seed=self.seed + REASK_SEED_STEP * attempt,
            retries=self.retries,
        )
        seconds = time.monotonic() - started
        self.cost.add(reply.tokens, seconds)
        code = extract_code(reply.text)
        generator_called(self.run_dir, self.iteration, attempt, messages, reply, seconds, code)
        return code


def reasker(again: Again) -> Callable[[int, str], str | None]:
    """The novelty check's re-ask: the same prompt plus the repeat note, hotter, another seed.
    Re-ask n asks for the iteration's attempt n: each ask before it was one repeat."""

    def reask(n: int, note: str) -> str | None:
        hotter = reask_temperature(again.temperature, n)
        return again.call(n, with_note(again.prompt, note), hotter)

    return reask


def fixer(again: Again) -> Callable[[FixRequest], str | None]:
    """The LLM-side fixes (agent/llm_fixes.py): a repair at the iteration's temperature, or a
    resample of the iteration's prompt told the error, hotter with each resample."""

    def fix(request: FixRequest) -> str | None:
        if request.strategy == "repair" and request.code is not None:
            messages = repair_messages(again.task, request.code, request.failure, request.stage)
            return again.call(request.attempt, messages, again.temperature)
        note = with_note(again.prompt, resample_note(request.failure))
        hotter = resample_temperature(again.temperature, request.tries)
        return again.call(request.attempt, note, hotter)

    return fix
