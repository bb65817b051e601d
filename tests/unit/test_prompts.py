"""The Generator's and Improver's prompts carry exactly what they are given; the outcome line."""

from __future__ import annotations

from typing import Any, cast

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.prompts import (
    ERROR_CHARS,
    SUGGESTION_CHARS,
    generator_messages,
    improver_messages,
    outcome_text,
)
from agent.replies.advice import parse_improvement
from agent.state import Candidate, Triple
from sandbox.result import EvalResult, new_result
from tests.helpers.prompts import (
    BEST,
    LAST_CODE,
    LAST_FAILED,
    LAST_OK,
    SUGGESTION,
    TASK,
    WINDOW,
    failed_result,
    human,
    ok_result,
    text,
)


def full_generator(**changes: Any) -> list[BaseMessage]:
    kwargs: dict[str, Any] = {
        "best": BEST,
        "last": LAST_FAILED,
        "suggestion": SUGGESTION,
        "window": WINDOW,
        "constraints": "CONSTRAINT_MARKER: at most 1M parameters.",
    }
    kwargs.update(changes)
    return generator_messages(TASK, **kwargs)


# --------------------------------------------------------------------------- outcome_text


class TestOutcomeText:
    def test_success(self) -> None:
        assert (
            outcome_text(ok_result(0.6123), best_accuracy=0.65)
            == "ok: val accuracy 0.6123 (best so far 0.6500), 0.42M params, 12.3 MFLOPs"
        )

    def test_success_without_best(self) -> None:
        assert outcome_text(ok_result(0.5)) == "ok: val accuracy 0.5000, 0.42M params, 12.3 MFLOPs"

    def test_small_and_missing_counts(self) -> None:
        assert outcome_text(ok_result(0.5, params=1234, flops=None)) == (
            "ok: val accuracy 0.5000, 1.2K params"
        )
        assert outcome_text(ok_result(0.5, params=None, flops=None)) == "ok: val accuracy 0.5000"

    def test_failure(self) -> None:
        assert outcome_text(failed_result("shape", "bad shape")) == "failed (shape): bad shape"

    def test_failure_message_is_clipped_to_one_line(self) -> None:
        line = outcome_text(failed_result("runtime", "boom\n" + "x" * 1000))
        prefix = "failed (runtime): "
        assert line.startswith(prefix + "boom x")
        assert "\n" not in line
        assert len(line) <= len(prefix) + ERROR_CHARS

    def test_no_code_failure(self) -> None:
        result = new_result("no_code", "the reply held no code", "hash")
        assert outcome_text(result) == "failed (no_code): the reply held no code"

    @pytest.mark.parametrize(
        ("bad", "line"),
        [
            ({}, "failed (unknown): no message"),
            ({"kind": None}, "failed (unknown): no message"),
            ({"kind": "ok", "val_accuracy": "x"}, "ok: val accuracy unknown"),
            ({"kind": "ok", "val_accuracy": 0.5, "params": "many"}, "ok: val accuracy 0.5000"),
            ({"kind": "shape", "message": 42}, "failed (shape): 42"),
            ("not a dict", "failed (unknown): no result"),
        ],
    )
    def test_malformed_results_say_what_is_unknown(self, bad: Any, line: str) -> None:
        assert outcome_text(cast(EvalResult, bad)) == line


# --------------------------------------------------------------------------- Generator


class TestGeneratorMessages:
    def test_message_types(self) -> None:
        messages = full_generator()
        assert [type(m) for m in messages] == [SystemMessage, HumanMessage]
        assert "architect" in str(messages[0].content)

    def test_everything_given_is_there(self) -> None:
        prompt = human(full_generator())
        for marker in (
            "BEST_MARKER",
            "LAST_MARKER",
            "SUGGESTION_MARKER",
            "WINDOW_P1",
            "WINDOW_S2",
            "CONSTRAINT_MARKER",
            "0.6500",  # the best accuracy
            "failed (shape): mat1 and mat2 shapes",  # the last outcome
        ):
            assert marker in prompt, marker
        order = ["## Task", "## Best", "## Last", "## Suggestion", "## Recent", "## Constraints"]
        positions = [prompt.index(header) for header in order]
        assert positions == sorted(positions)
        assert prompt.rstrip().endswith("no explanation.")

    def test_task_shape_classes_and_budget(self) -> None:
        prompt = human(full_generator())
        assert "cifar100" in prompt
        assert "(3, 40, 48)" in prompt and "(B, 3, 40, 48)" in prompt
        assert "37" in prompt and "(B, 37)" in prompt
        assert "num_classes=37" in prompt
        assert "ONE epoch" in prompt
        for forbidden in ("do not train", "load data", "download", "files"):
            assert forbidden in prompt

    def test_output_contract(self) -> None:
        prompt = human(full_generator())
        assert "exactly one ```python block" in prompt
        assert "class Net(nn.Module)" in prompt
        assert "# (B, 32, 16, 16)" in prompt

    def test_no_best_leaves_no_trace(self) -> None:
        prompt = text(full_generator(best=None))
        assert "BEST_MARKER" not in prompt
        assert "best" not in prompt.lower()
        assert "LAST_MARKER" in prompt

    def test_no_window_leaves_no_trace(self) -> None:
        prompt = text(full_generator(window=[]))
        assert "WINDOW_" not in prompt and "Recent attempts" not in prompt

    def test_no_suggestion_leaves_no_trace(self) -> None:
        prompt = text(full_generator(suggestion="", window=[]))
        assert "suggestion" not in prompt.lower()

    def test_no_constraints_leave_no_trace(self) -> None:
        prompt = text(full_generator(constraints=""))
        assert "constraint" not in prompt.lower()

    def test_everything_ablated(self) -> None:
        prompt = human(generator_messages(TASK, best=None, last=None, suggestion="", window=[]))
        assert prompt.count("## ") == 2  # the task and the answer format, nothing else
        assert "```python\n" not in prompt  # no code at all
        for word in ("best", "suggestion", "recent", "last attempt", "constraint"):
            assert word not in prompt.lower()

    def test_last_that_is_the_best_is_shown_once(self) -> None:
        prompt = human(full_generator(last=BEST))
        assert prompt.count("BEST_MARKER") == 1
        assert "## Last attempt" not in prompt

    def test_last_without_code_shows_its_outcome(self) -> None:
        no_code = Candidate(
            iteration=6, code="", result=new_result("no_code", "no code in reply", "h")
        )
        prompt = human(full_generator(last=no_code))
        assert "## Last attempt" in prompt
        assert "failed (no_code): no code in reply" in prompt

    def test_window_entries_are_clipped(self) -> None:
        long = [Triple(iteration=1, problem="p" * 5000, suggestion="s" * 5000, outcome="o" * 5000)]
        prompt = human(full_generator(window=long))
        assert "p" * SUGGESTION_CHARS not in prompt and "p" * (SUGGESTION_CHARS - 10) in prompt
        assert "s" * SUGGESTION_CHARS not in prompt and "s" * (SUGGESTION_CHARS - 10) in prompt
        assert "o" * SUGGESTION_CHARS not in prompt

    def test_window_is_numbered_and_compact(self) -> None:
        prompt = human(full_generator())
        assert "1. problem: WINDOW_P1 -> suggestion: WINDOW_S1 -> outcome: ok: val 0.6" in prompt
        assert "2. problem: WINDOW_P2" in prompt

    def test_long_code_is_clipped(self) -> None:
        huge = "import torch\n" + "x = 1  # padding\n" * 5000 + "class Net:\n    TAIL_MARKER = 1\n"
        best = Candidate(iteration=1, code=huge, result=ok_result())
        prompt = human(full_generator(best=best))
        assert len(prompt) < 20_000
        assert "import torch" in prompt and "TAIL_MARKER" in prompt
        assert "characters cut" in prompt


# --------------------------------------------------------------------------- Improver


class TestImproverMessages:
    def test_failure_prompt_says_only_the_fix(self) -> None:
        messages = improver_messages(TASK, last=LAST_FAILED, best=BEST, window=WINDOW)
        assert [type(m) for m in messages] == [SystemMessage, HumanMessage]
        prompt = human(messages)
        assert "ONLY job is to fix this error" in prompt
        assert "shape" in prompt and "mat1 and mat2 shapes" in prompt
        assert "TRACE_MARKER" in prompt
        assert "LAST_MARKER" in prompt
        assert "0.6500" in prompt  # best accuracy so far
        assert "WINDOW_P2" in prompt
        assert "(3, 40, 48)" in prompt and "37" in prompt
        assert '{"problem": "' in prompt and '"suggestion": "' in prompt

    def test_success_prompt_asks_for_one_change(self) -> None:
        prompt = human(improver_messages(TASK, last=LAST_OK, best=BEST, window=[]))
        assert "ONLY job" not in prompt
        assert "ONE concrete, small change" in prompt
        assert "0.6100" in prompt and "0.42M params" in prompt and "12.3 MFLOPs" in prompt
        assert "FAILED" not in prompt and "Traceback" not in prompt

    def test_ablations_leave_no_trace(self) -> None:
        prompt = human(improver_messages(TASK, last=LAST_FAILED, best=None, window=[]))
        assert "Best" not in prompt and "0.6500" not in prompt
        assert "Recent attempts" not in prompt and "WINDOW_" not in prompt

    @pytest.mark.parametrize("kind", ["syntax", "import", "oom", "timeout", "nan", "no_code"])
    def test_every_failure_kind_gets_the_fix_job(self, kind: str) -> None:
        last = Candidate(iteration=2, code="", result=failed_result(kind, f"{kind} went wrong"))
        prompt = human(improver_messages(TASK, last=last, best=None, window=[]))
        assert f"failed with a {kind} error" in prompt
        assert f"{kind} went wrong" in prompt
        assert "```python\n" not in prompt  # no code to show

    def test_traceback_tail_only(self) -> None:
        frames = "\n".join(f"  frame {i}" for i in range(200))
        result = new_result("runtime", "boom", "h", traceback=frames + "\nFINAL_LINE")
        last = Candidate(iteration=2, code=LAST_CODE, result=result)
        prompt = human(improver_messages(TASK, last=last, best=None, window=[]))
        assert "FINAL_LINE" in prompt and "frame 199" in prompt and "frame 0\n" not in prompt

    def test_the_answer_template_is_not_mistaken_for_advice(self) -> None:
        prompt = human(improver_messages(TASK, last=LAST_FAILED, best=None, window=[]))
        template = prompt[prompt.index("{") :]
        assert parse_improvement(template) is None  # a model that echoes it gives nothing

    def test_a_malformed_candidate_is_asked_about_as_an_unknown_failure(self) -> None:
        last = Candidate(iteration=1, code="", result=cast(EvalResult, {}))
        prompt = human(improver_messages(TASK, last=last, best=None, window=[]))
        assert "## Result of attempt 1\nIt FAILED. Error kind: unknown.\nno message\n" in prompt
        assert "The network failed with a unknown error. Your ONLY job is to fix" in prompt
        assert "```python\n" not in prompt  # no code to show
