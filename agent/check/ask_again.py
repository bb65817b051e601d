"""The Generator asked again within one iteration: the novelty check's re-ask, and the LLM-side
fixes of a failed program (a repair request that shows the failing lines, a hotter resample told
which error to avoid). Each call is archived in the `calls` table under the number of the attempt
its answer becomes; `Again` keeps the calls, tokens and seconds it spent, for the node to read.

With `--edit-mode diff|auto` an answer may be edit blocks (agent/replies/edits.py): a re-ask's and a
resample's apply to the code the iteration's prompt showed, a repair's to the failing module. With
`--fill-in` an answer of layers only is spliced into the skeleton (agent/replies/fill_in.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from agent.archive.observe import generator_called
from agent.check.llm_fixes import FixRequest, resample_temperature
from agent.check.novelty import REASK_SEED_STEP, reask_temperature
from agent.llm.client import ask
from agent.prompts.fix import repair_messages, resample_note
from agent.prompts.short import with_note
from agent.replies.edits import EditContext, Reading
from agent.replies.fill_in import read_reply
from agent.state import TaskInfo


@dataclass
class Again:
    """How one iteration asks its Generator again, and what it has spent doing so."""

    chat_at: Callable[[float], Any]  # the Generator's chat client at a given temperature
    prompt: list[BaseMessage]  # the iteration's own Generator prompt, as `generate` built it
    task: TaskInfo
    temperature: float  # the iteration's Generator temperature (a parallel branch's own)
    seed: int  # the iteration's sampling seed (run seed + iteration)
    retries: int
    run_dir: Path
    iteration: int
    edit_mode: str = "full"  # how a reply is read (agent/replies/edits.py)
    edits: EditContext = field(default_factory=EditContext)  # what the prompt's edits apply to
    fill_in: bool = False  # a reply of layers only goes into the fill-in skeleton
    # What the asks so far spent: this object's own ledger, read by the node when it is done
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def call(
        self, attempt: int, messages: list[BaseMessage], temperature: float, base: str | None
    ) -> Reading:
        """One call for attempt `attempt`, archived; what its reply gave, its edit blocks applied
        to `base`. Each attempt samples with its own seed: the same prompt and seed would give
        the same answer."""
        started = time.monotonic()
        reply = ask(
            self.chat_at(temperature),
            messages,
            role="generator",
            seed=self.seed + REASK_SEED_STEP * attempt,
            retries=self.retries,
        )
        seconds = time.monotonic() - started
        self.calls, self.tokens, self.seconds = (
            self.calls + 1,
            self.tokens + reply.tokens,
            self.seconds + seconds,
        )
        read = read_reply(reply.text, base, self.edit_mode, self.task if self.fill_in else None)
        generator_called(self.run_dir, self.iteration, attempt, messages, reply, seconds, read)
        return read


def reasker(again: Again) -> Callable[[int, str], Reading]:
    """The novelty check's re-ask: the same prompt plus the repeat note, hotter, another seed.
    Re-ask n asks for the iteration's attempt n: each ask before it was one repeat. Its edit
    blocks apply to the code the prompt showed; its `Reading` says why they did not."""

    def reask(n: int, note: str) -> Reading:
        hotter = reask_temperature(again.temperature, n)
        return again.call(n, with_note(again.prompt, note), hotter, again.edits.base)

    return reask


def fixer(again: Again) -> Callable[[FixRequest], Reading]:
    """The LLM-side fixes (agent/check/llm_fixes.py): a repair at the iteration's temperature (its
    edit blocks apply to the failing module), or a resample of the iteration's prompt told the
    error, hotter with each resample."""

    def fix(request: FixRequest) -> Reading:
        code = request.code
        if request.strategy == "repair" and code is not None:
            messages = repair_messages(
                again.task, code, request.failure, request.stage, again.edit_mode
            )
            return again.call(request.attempt, messages, again.temperature, code)
        note = with_note(again.prompt, resample_note(request.failure))
        hotter = resample_temperature(again.temperature, request.tries)
        return again.call(request.attempt, note, hotter, again.edits.base)

    return fix
