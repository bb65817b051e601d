"""The short Generator prompt (prompt_style short): the task in a line, a skeleton whose head
cannot get the flattened size wrong, what the loop learned, and the output contract last."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.prompts import SUGGESTION_CHARS
from agent.prompts.common import HEAD
from agent.prompts.short import short_generator_messages, with_note
from sandbox.code import static_problem
from tests.helpers.prompts import BEST, LAST_FAILED, SUGGESTION, TASK, WINDOW, human, text


def short(**changes: Any) -> list[BaseMessage]:
    kwargs: dict[str, Any] = {
        "best": BEST,
        "last": LAST_FAILED,
        "suggestion": SUGGESTION,
        "window": WINDOW,
        "constraints": "CONSTRAINT_MARKER: at most 1M parameters.",
    }
    kwargs.update(changes)
    return short_generator_messages(TASK, **kwargs)


def skeleton_code(prompt: str) -> str:
    return prompt.split("```python\n", 1)[1].split("```", 1)[0]


def test_a_system_and_a_human_message() -> None:
    assert [type(m) for m in short()] == [SystemMessage, HumanMessage]


def test_the_first_prompt_is_task_skeleton_contract_and_short() -> None:
    prompt = human(short(best=None, last=None, suggestion="", window=[], constraints=""))
    assert "(B, 3, 40, 48)" in prompt and "37 classes" in prompt and "cifar100" in prompt
    code = skeleton_code(prompt)
    assert f"self.head = {HEAD}" in code
    assert "nn.LazyLinear" in HEAD and "nn.Flatten()" in HEAD
    assert "num_classes=37" in code and "nn.Conv2d(3, " in code  # the task's channels
    assert static_problem(code) is None  # the skeleton itself parses and defines Net
    # the contract comes last, and names the shapes
    last = prompt.split("\n\n")[-1]
    assert last.startswith("Reply with one ```python block")
    assert "(B, 37)" in last and "no example usage" in last
    assert len(prompt) < 1500  # short: a small model reads all of it


def test_everything_given_is_there_in_order() -> None:
    prompt = human(short())
    markers = ["BEST_MARKER", "Last attempt: failed (shape)", "SUGGESTION_MARKER", "WINDOW_P1"]
    positions = [prompt.index(m) for m in [*markers, "CONSTRAINT_MARKER", "Reply with"]]
    assert positions == sorted(positions)
    assert "LAST_MARKER" not in prompt  # the best network is the one to build on
    assert "Start from this skeleton" not in prompt


def test_ablations_leave_no_trace() -> None:
    prompt = text(short(best=None, last=None, suggestion="", window=[], constraints=""))
    for word in ("best", "last attempt", "apply this change", "recent", "constraint"):
        assert word not in prompt.lower()


def test_a_failed_last_attempt_without_a_best_shows_its_code() -> None:
    prompt = human(short(best=None))
    assert "LAST_MARKER" in prompt and "failed (shape): mat1 and mat2 shapes" in prompt


def test_window_entries_are_clipped() -> None:
    long = [dict(WINDOW[0], problem="p" * 5000)]
    assert "p" * SUGGESTION_CHARS not in human(short(window=long))


def test_a_reask_note_goes_just_before_the_contract() -> None:
    note = "Your answer was identical to attempt 2, which failed with shape: x."
    prompt = human(with_note(short(), note))
    assert prompt.index("CONSTRAINT_MARKER") < prompt.index(note) < prompt.index("Reply with")
