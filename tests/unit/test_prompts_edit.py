"""The Generator's request for edit blocks (agent/prompts/edit.py) in both prompt styles, and the
check step's record of an edited reply: its diff from the code shown, or its `bad_edit`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, SystemMessage

from agent.archive.candidates import SeenProgram
from agent.check.step import Attempt, Iteration, check_and_train
from agent.prompts import generator_messages
from agent.prompts.edit import MARKERS, edit_base, edit_request
from agent.prompts.short import short_generator_messages, with_note
from agent.replies.edits import EditContext, Reading, code_from_reply
from agent.settings import Settings
from agent.state import Candidate
from sandbox.code import code_hash
from sandbox.result import new_result
from tests.helpers.paths import ROOT
from tests.helpers.prompts import BASE, LAST_FAILED, SUGGESTION, TASK, WINDOW, human, ok_result

BEST = Candidate(iteration=3, code=BASE, result=ok_result(0.65))


def prompt(style: str, mode: str, best: Candidate | None = BEST) -> list[BaseMessage]:
    build = generator_messages if style == "paper" else short_generator_messages
    messages = build(TASK, best=best, last=LAST_FAILED, suggestion=SUGGESTION, window=WINDOW)
    settings = Settings(edit_mode=mode, prompt_style=style)
    return edit_request(messages, edit_base(best, mode), settings, TASK, SUGGESTION)


@pytest.mark.parametrize("style", ["short", "paper"])
def test_diff_mode_asks_for_blocks_against_the_best_network_shown(style: str) -> None:
    messages = prompt(style, "diff")
    body = human(messages)
    assert isinstance(messages[0], SystemMessage) and "edit blocks" in str(messages[0].content)
    assert "self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))" in body
    contract = body.rsplit("\n\n", 1)[1]  # the last paragraph: the format, then an example
    assert all(contract.count(marker) == 2 for marker in MARKERS)  # in words, then a block
    assert "best network" in contract and "whole module" not in contract
    # the example's SEARCH line is a real line of the code, so copying it would match
    example = contract.split(MARKERS[0])[2].split(MARKERS[1])[0].strip("\n")
    assert example in BASE.split("\n") and example.startswith("            nn.")
    # everything the style's own prompt says before its contract is still there
    before = human(prompt(style, "full")).rsplit("\n\n", 1)[0]
    assert body.startswith(before) and "SUGGESTION_MARKER" in body and "WINDOW_P2" in body


@pytest.mark.parametrize("style", ["short", "paper"])
def test_auto_mode_also_allows_a_whole_module_and_full_mode_is_unchanged(style: str) -> None:
    assert "reply instead with the whole module" in human(prompt(style, "auto"))
    build = generator_messages if style == "paper" else short_generator_messages
    plain = build(TASK, best=BEST, last=LAST_FAILED, suggestion=SUGGESTION, window=WINDOW)
    assert prompt(style, "full") == plain
    # nothing shown to edit (the first iteration): a whole module is asked for, in every mode
    first = build(TASK, best=None, last=None, suggestion="", window=[])
    settings = Settings(edit_mode="diff", prompt_style=style)
    assert edit_request(first, edit_base(None, "diff"), settings, TASK, "") == first


def test_a_reask_note_goes_just_before_the_edit_contract() -> None:
    note = "Your answer was identical to attempt 2, which failed with shape: x."
    body = human(with_note(prompt("short", "diff"), note))
    assert body.index("SUGGESTION_MARKER") < body.index(note) < body.index(MARKERS[0])


def test_the_edit_base_is_the_best_code_and_only_outside_full_mode() -> None:
    assert edit_base(BEST, "diff") == BASE == edit_base(BEST, "auto")
    assert edit_base(BEST, "full") is None and edit_base(None, "diff") is None
    blank = Candidate(iteration=1, code="  \n", result=ok_result(0.5))
    assert edit_base(blank, "diff") is None


def run_check(code: str | None, edits: EditContext) -> list[Attempt]:
    attempts: list[Attempt] = []

    def train(program: str) -> dict[str, Any]:
        return dict(new_result("ok", "trained", code_hash(program), val_accuracy=0.5))

    check_and_train(code, Iteration(seen={}, train=train, record=attempts.append, edits=edits))
    return attempts


def test_a_bad_edit_is_the_iterations_failed_attempt_with_its_message() -> None:
    reply = "<<<<<<< SEARCH\n        self.body = nn.Identity()\n=======\nx\n>>>>>>> REPLACE"
    read = code_from_reply(reply, BASE, "diff")
    (attempt,) = run_check(read.code, EditContext(BASE, read.error))
    assert attempt.code is None and attempt.source == "generator"
    assert attempt.result["kind"] == "bad_edit" and attempt.result["status"] == "error"
    assert attempt.result["message"].startswith("edit block 1: its SEARCH text is not in the code")
    # switched off (no error kept): the same reply would be an unexplained `no_code`
    (plain,) = run_check(read.code, EditContext(BASE))
    assert plain.result["kind"] == "no_code"


def test_an_applied_edit_is_trained_and_archived_with_its_diff_from_the_code_shown() -> None:
    reply = "<<<<<<< SEARCH\n            nn.MaxPool2d(2),\n        )\n=======\n        )\n"
    reply += ">>>>>>> REPLACE"
    read = code_from_reply(reply, BASE, "diff")
    (attempt,) = run_check(read.code, EditContext(BASE, read.error))
    assert attempt.result["kind"] == "ok" and attempt.code == read.code
    assert attempt.diff.startswith("--- a/candidate.py") and "-            nn.MaxPool2d(2),\n" in (
        attempt.diff
    )
    (module,) = run_check(read.code, EditContext(None))  # full mode: no diff, as before
    assert module.diff == ""


def test_a_bad_edit_mode_is_one_line_that_names_the_choices() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent.run", "--edit-mode", "patch", "--iterations", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "nasloop: error: NASLOOP_EDIT_MODE='patch' is invalid: Input should be 'full', 'diff' or "
        "'auto' (see .env.example)"
    ]


def test_a_reask_whose_blocks_do_not_fit_ends_the_iteration_as_a_bad_edit() -> None:
    """The novelty check re-asks a repeat; the re-ask's reply is read against the same code and
    its error comes back with it, so the iteration ends as a `bad_edit`, not `no_code`."""
    edits = EditContext(BASE)
    attempts: list[Attempt] = []

    def reask(n: int, note: str) -> Reading:
        return code_from_reply(
            "<<<<<<< SEARCH\nnothing like it\n=======\nx\n>>>>>>> REPLACE", BASE, "diff"
        )

    seen = {code_hash(BASE): SeenProgram(0, "ok", "")}
    it = Iteration(seen=seen, train=lambda c: {}, record=attempts.append, reask=reask, edits=edits)
    final = check_and_train(BASE, it)
    assert [a.source for a in attempts] == ["generator", "reask"]
    assert [a.result["kind"] for a in attempts] == ["duplicate", "bad_edit"] and final is attempts[
        1
    ]
