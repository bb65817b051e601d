"""The LLM-side fixes (agent/check/llm_fixes.py, step.py, ask_again.py): repair requests that
locate the error, hotter resamples told the error, and their calls counted and capped.

The Generator is a real HTTP server (tests/fakes/openai_server.py) playing tests/fakes/repairs.py's
small models, asked through the real ChatOpenAI; the failure they are asked to fix is the one the
process sandbox's dry run really reports for that module (FAILURE below, captured from it). The
sandbox is a fake here (tests/integration/test_llm_fixes_http.py runs the real one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

import agent.prompts.fix as prompts_fix
from agent.archive.calls import CallLog
from agent.archive.candidates import RunArchive
from agent.check.ask_again import Again, fixer
from agent.check.cascade import SandboxChecks
from agent.check.llm_fixes import calls_left, fix_plan
from agent.check.locate import excerpt, locate, trace_lines
from agent.check.novelty import REASK_SEED_STEP
from agent.check.step import Attempt, Iteration, attempt_recorder, check_and_train
from agent.llm.client import make_chat
from agent.prompts.fix import repair_messages, resample_note
from agent.replies.code import extract_code
from agent.replies.edits import Reading
from agent.results.ablate import run_argv
from agent.results.quality import run_quality
from agent.run import build_parser
from agent.settings import RoleConfig, Settings, load_settings
from sandbox.code import code_hash
from sandbox.result import new_result
from sandbox.settings import SettingsError
from tests.fakes import FakeOpenAIServer, ScriptedResponder
from tests.fakes.mistakes import GENERATOR
from tests.fakes.openai_server import Responder
from tests.fakes.repairs import (
    CHANNELS_WRONG,
    RIGHT_LINE,
    WRONG_LINE,
    WRONG_LINE_NUMBER,
    EverNewMistakes,
    LocatingResponder,
    follows,
    stubborn,
)

TASK: Any = {"dataset": "mnist5k", "input_shape": [1, 28, 28], "num_classes": 10}
WRONG = extract_code(CHANNELS_WRONG) or ""
# What the process sandbox's dry run of WRONG reports (2026-12-02), traceback cut as the runner
# cuts it: torch's frames filled the tail, so no line of candidate.py is left in it
FAILURE: dict[str, Any] = {
    "status": "error",
    "kind": "shape",
    "message": "RuntimeError: Given groups=1, weight of size [64, 16, 3, 3], expected input[2, "
    "32, 14, 14] to have 16 channels, but got 32 channels instead (during forward); shape trace: "
    "conv1 Conv2d -> (2, 32, 28, 28); pool MaxPool2d -> (2, 32, 14, 14); conv2 Conv2d FAILED on "
    "input (2, 32, 14, 14)",
    "traceback": '  File "/usr/lib/python3.11/site-packages/torch/nn/modules/conv.py", line 560, '
    "in _conv_forward\n    return F.conv2d(\nRuntimeError: Given groups=1, weight of size "
    "[64, 16, 3, 3], expected input[2, 32, 14, 14] to have 16 channels, but got 32 channels",
    "shape_trace": [
        {"module": "conv1", "type": "Conv2d", "out": [2, 32, 28, 28]},
        {"module": "pool", "type": "MaxPool2d", "out": [2, 32, 14, 14]},
        {
            "module": "conv2",
            "type": "Conv2d",
            "out": None,
            "failed": True,
            "in_shape": [2, 32, 14, 14],
        },
    ],
}
PROMPT = [
    SystemMessage("You write PyTorch nets."),
    HumanMessage("Task: MNIST.\n\nReply with code."),
]


# --- where the error is, in the request -------------------------------------------------------


def test_a_failed_layer_is_located_where_it_is_built() -> None:
    where = locate(WRONG, FAILURE)
    assert where is not None and where.line == WRONG_LINE_NUMBER
    assert "`conv2` (Conv2d)" in where.why and "(2, 32, 14, 14)" in where.why
    shown = excerpt(WRONG, where.line).splitlines()
    assert f">> {WRONG_LINE_NUMBER} | {WRONG_LINE}" in shown
    assert [line[:2] for line in shown].count(">>") == 1 and len(shown) == 7


def test_other_failures_are_located_by_traceback_lint_line_or_message() -> None:
    code = "\n".join(f"x{n} = {n}" for n in range(1, 21))
    frame = {
        "traceback": 'File "candidate.py", line 4, in <module>\n  File "candidate.py", line 14'
    }
    assert locate(code, frame).line == 14  # type: ignore[union-attr]  # the innermost frame
    assert locate(code, {"line": 6, "message": "at line 9"}).line == 6  # type: ignore[union-attr]
    syntax = {"message": "SyntaxError: invalid syntax at line 9: x ="}
    assert locate(code, syntax).line == 9  # type: ignore[union-attr]
    assert locate(code, {"message": "the module defines no `Net`"}) is None
    assert locate(code, {"message": "at line 99"}) is None  # not a line of this module
    assert excerpt(code, 1).splitlines() == [  # clamped at the top
        ">> 1 | x1 = 1",
        "   2 | x2 = 2",
        "   3 | x3 = 3",
        "   4 | x4 = 4",
    ]


def test_the_repair_request_shows_the_failing_lines_and_the_shape_trace() -> None:
    system, human = repair_messages(TASK, WRONG, FAILURE, "dry_run")
    text = str(human.content)
    assert "one ```python block" in str(system.content)
    assert "failed in its first forward pass" in text
    assert f"The error is at line {WRONG_LINE_NUMBER}: layer `conv2`" in text
    assert f">> {WRONG_LINE_NUMBER} | {WRONG_LINE}" in text
    assert "conv2 Conv2d FAILED on input (2, 32, 14, 14)" in text
    assert text.count("conv1 Conv2d -> (2, 32, 28, 28)") == 1  # the list, not the one-line too
    assert f"```python\n{WRONG}" in text  # the whole module, to copy and correct
    assert trace_lines(FAILURE)[-1] == "conv2 Conv2d FAILED on input (2, 32, 14, 14)"
    unlocated = str(
        repair_messages(TASK, WRONG, {"kind": "no_net", "message": "no Net"}, "")[1].content
    )
    assert ">>" not in unlocated and "Correct the error" in unlocated


def test_a_lint_failure_is_located_at_the_line_the_lint_found() -> None:
    code = "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n"
    code += "        return frobnicate(x)\n"
    failure = SandboxChecks(executor=None, task=TASK).lint(code)  # type: ignore[arg-type]
    assert failure is not None and failure["line"] == 6
    text = str(repair_messages(TASK, code, failure, "lint")[1].content)
    assert ">> 6 |         return frobnicate(x)" in text and "a static check" in text


def test_the_resample_note_names_the_error() -> None:
    note = resample_note(FAILURE)
    assert note.startswith("The last program written for this step failed with shape: ")
    assert "to have 16 channels, but got 32" in note and "shape trace" not in note


# --- the fixes in the check step, against the HTTP Generator -----------------------------------


class ChannelChecks:
    """The dry run fails every module with the channel mistake (whatever its width) as the
    sandbox does; the lint and the mechanical fixes are the real ones (and none of the host's
    fixers touches a convolution)."""

    def __init__(self) -> None:
        self.dry_runs = 0
        self.real = SandboxChecks(executor=None, task=TASK)  # type: ignore[arg-type]

    def lint(self, code: str) -> dict[str, Any] | None:
        return self.real.lint(code)

    def dry_run(self, code: str) -> dict[str, Any]:
        self.dry_runs += 1
        if "nn.Conv2d(16, " in code:
            return {**FAILURE, "code_hash": code_hash(code)}
        return dict(new_result("ok", "dry run ok: output (2, 10)", code_hash(code)))

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Any:
        return self.real.fix(code, failure, stage)


@dataclass
class Run:
    """One iteration's check step with LLM-side fixes, its archive, and the Generator's server."""

    server: FakeOpenAIServer
    archive: RunArchive
    trained: list[str] = field(default_factory=list)
    again: Again | None = None  # the last iteration's, with what it spent
    seed: int = 7  # the iteration's sampling seed; a repair asks with seed + REASK_SEED_STEP

    def train(self, code: str) -> dict[str, Any]:
        self.trained.append(code)
        return dict(new_result("ok", "trained", code_hash(code), val_accuracy=0.9))

    def iteration(
        self, plan: tuple[str, ...], budget: int | None = None, edit_mode: str = "full"
    ) -> Iteration:
        again = Again(
            chat_at=lambda t: make_chat(
                "generator", RoleConfig(self.server.base_url, GENERATOR, "k", t, 1024), 10
            ),
            prompt=PROMPT,
            task=TASK,
            temperature=0.4,
            seed=self.seed,
            retries=0,
            run_dir=self.archive.run_dir,
            iteration=0,
            edit_mode=edit_mode,
        )
        self.again = again
        return Iteration(
            seen=self.archive.seen_before(0),
            train=self.train,
            record=attempt_recorder(self.archive, 0),
            reask=lambda n, note: Reading(None, None),  # the novelty check on
            checks=ChannelChecks(),
            ask_fix=fixer(again),
            fix_plan=plan,
            calls_left=calls_left(budget, lambda: 1 + again.calls),  # the first ask's too
        )

    def check(
        self, plan: tuple[str, ...], budget: int | None = None, edit_mode: str = "full"
    ) -> Attempt:
        return check_and_train(WRONG, self.iteration(plan, budget, edit_mode))

    def sources(self) -> list[tuple[str, str, str]]:
        return [(a["source"], a["stage"], a["kind"]) for a in self.archive.attempts(0)]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[FakeOpenAIServer] = []

    def start(responder: Responder) -> Run:
        server = FakeOpenAIServer(responder).start()
        servers.append(server)
        return Run(server, RunArchive(tmp_path / f"run{len(servers)}"))

    yield start
    for server in servers:
        server.close()


FOLLOWED_SEED = 2  # an iteration seed whose first repair (seed + REASK_SEED_STEP) is followed


def repaired_seeds(serve: Any, seeds: range) -> list[int]:
    """The iteration seeds at which two repairs turned the mistake into a trained net."""
    fixed = []
    for seed in seeds:
        run = serve(LocatingResponder())
        run.seed = seed
        final = run.check(("repair", "repair"))
        if final.result["kind"] == "ok":
            assert RIGHT_LINE in (final.code or "") and run.trained == [final.code]
            fixed.append(seed)
        else:  # the module came back unchanged: a repeat ends the repairs, nothing is trained
            assert final.result["kind"] == "duplicate" and run.trained == []
            assert len(run.server.requests) == 1
    return fixed


def test_a_model_shown_the_failing_lines_repairs_its_mistake_some_of_the_time(
    serve: Any,
) -> None:
    assert follows(FOLLOWED_SEED + REASK_SEED_STEP)
    run = serve(LocatingResponder())
    run.seed = FOLLOWED_SEED
    final = run.check(("repair", "repair"))
    assert final.result["kind"] == "ok" and RIGHT_LINE in (final.code or "")
    assert run.sources() == [("generator", "dry_run", "shape"), ("repair", "train", "ok")]
    assert run.trained == [final.code]
    (request,) = run.server.requests  # one repair was enough: the second is not asked
    assert request["temperature"] == 0.4  # a repair keeps the iteration's temperature
    assert request["seed"] == FOLLOWED_SEED + REASK_SEED_STEP
    # over twenty iterations, as often as the small model follows a pointed repair: not always
    fixed = repaired_seeds(serve, range(20))
    assert fixed == [s for s in range(20) if follows(s + REASK_SEED_STEP)]
    assert 2 <= len(fixed) <= 10


def test_without_the_failing_lines_the_same_model_repeats_its_mistake(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts_fix, "locate", lambda code, failure: None)  # the mechanism off
    run = serve(LocatingResponder())
    run.seed = FOLLOWED_SEED  # a seed at which it follows a repair that points at the line
    final = run.check(("repair", "repair"))
    assert run.trained == [] and final.result["kind"] == "duplicate"
    assert run.sources() == [("generator", "dry_run", "shape"), ("repair", "novelty", "duplicate")]
    assert repaired_seeds(serve, range(20)) == []


def test_a_model_that_repeats_its_mistake_is_not_asked_again_by_that_fix(serve: Any) -> None:
    run = serve(stubborn())
    final = run.check(("repair", "repair", "repair"))
    assert len(run.server.requests) == 1  # R=3, but the repeated mistake ends the repairs
    assert final.result["kind"] == "duplicate" and run.trained == []
    assert "a repair answered with a program tried before" in final.result["message"]
    assert "which failed with shape: RuntimeError: Given groups=1" in final.result["message"]
    # with a resample after it, the resample still gets its turn, and also ends on a repeat
    other = serve(stubborn())
    other.check(("repair", "resample", "resample"))
    assert [a[0] for a in other.sources()] == ["generator", "repair", "resample"]
    assert len(other.server.requests) == 2


def test_a_resample_is_hotter_each_time_and_is_told_the_error(serve: Any) -> None:
    run = serve(EverNewMistakes())
    final = run.check(("resample", "resample"))
    first, second = run.server.requests
    assert (first["temperature"], second["temperature"]) == (0.7, 1.0)  # 0.4 + 0.3 per resample
    assert first["seed"] != second["seed"]
    note = first["messages"][-1]["content"]
    assert note.startswith("Task: MNIST.\n\nThe last program written for this step failed with")
    assert note.endswith("\n\nReply with code.")  # the iteration's prompt, the note before its end
    assert final.result["kind"] == "shape" and [a[0] for a in run.sources()] == [
        "generator",
        "resample",
        "resample",
    ]


def test_every_fix_is_one_archived_generator_call_and_counted(serve: Any) -> None:
    run = serve(EverNewMistakes())
    final = run.check(("resample", "resample"))
    calls = CallLog(run.archive.run_dir).calls(0)
    assert [(c["role"], c["attempt"]) for c in calls] == [("generator", 1), ("generator", 2)]
    assert [a["attempt"] for a in run.archive.attempts(0)] == [0, 1, 2]
    assert run.again is not None and run.again.calls == 2  # what the node adds to the budget
    assert run.again.tokens == sum(c["tokens"] for c in calls) > 0
    run.archive.record_candidate(0, final.code, final.result, run.again.tokens)
    assert run.archive.llm_calls() == (3, 0)  # the first ask and the two resamples
    assert run_quality(run.archive.run_dir)["generator_calls"] == 3


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_fixes_never_overspend_the_budget_of_calls(serve: Any, budget: int) -> None:
    run = serve(EverNewMistakes())  # never repeats itself: only the budget stops the fixes
    run.check(("resample",) * 5, budget=budget)
    assert len(run.server.requests) == budget - 1  # the iteration's first ask is one of them
    assert sum(run.archive.llm_calls(asking=0)) == budget


def test_a_reply_without_code_is_resampled_not_repaired(serve: Any) -> None:
    run = serve(stubborn())
    final = check_and_train(None, run.iteration(("repair", "resample")))
    assert [a[0] for a in run.sources()] == ["generator", "resample"]
    assert "held no ```python block" in run.server.requests[0]["messages"][-1]["content"]
    assert final.result["kind"] == "shape"  # the resample's program failed its dry run


def test_in_edit_mode_a_repair_edits_the_failing_module(serve: Any) -> None:
    block = f"<<<<<<< SEARCH\n{WRONG_LINE}\n=======\n{RIGHT_LINE}\n>>>>>>> REPLACE\n"
    run = serve(ScriptedResponder({GENERATOR: [block]}))
    final = run.check(("repair",), edit_mode="diff")
    assert final.result["kind"] == "ok" and final.code == WRONG.replace(WRONG_LINE, RIGHT_LINE)
    assert run.sources() == [("generator", "dry_run", "shape"), ("repair", "train", "ok")]
    diff = run.archive.attempts(0)[1]["diff"]
    assert f"-{WRONG_LINE}" in diff and f"+{RIGHT_LINE}" in diff  # what the repair changed
    asked = run.server.requests[0]["messages"]
    assert "SEARCH/REPLACE" in asked[0]["content"]
    assert "Reply with edit blocks that change the module above" in asked[-1]["content"]
    # blocks that do not fit the failing module: a bad edit, and the iteration's result
    misfit = serve(ScriptedResponder({GENERATOR: [block.replace("(16, 64", "(8, 64")]}))
    final = misfit.check(("repair",), edit_mode="diff")
    assert misfit.sources()[-1] == ("repair", "none", "bad_edit")
    assert final.result["kind"] == "bad_edit" and misfit.trained == []


# --- settings, variants, numbers ---------------------------------------------------------------


def test_the_plan_follows_the_order_and_repeats_its_last_fix() -> None:
    assert fix_plan("repair,resample", 3) == ("repair", "resample", "resample")
    assert fix_plan("resample", 2) == ("resample", "resample") and fix_plan("repair", 0) == ()
    assert Settings(repair_attempts=2, fix_order=" Repair , resample").fix_plan() == (
        "repair",
        "resample",
    )
    assert Settings().fix_plan() == ()  # no LLM-side fix until the benchmark says otherwise


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"fix_order": "repair,rewrite"}, "NASLOOP_FIX_ORDER='repair,rewrite' is invalid"),
        ({"fix_order": " , "}, "use repair, resample, or both"),
        ({"repair_attempts": 9}, "NASLOOP_REPAIR_ATTEMPTS=9 is invalid"),
    ],
)
def test_bad_fix_settings_are_one_line_naming_the_fix(values: dict[str, Any], words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**values)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variant", "attempts", "order"),
    [("repair", "2", "repair"), ("resample", "2", "resample"), ("full", "0", "repair,resample")],
)
def test_each_variant_sets_its_llm_side_fixes(variant: str, attempts: str, order: str) -> None:
    args = build_parser().parse_args(run_argv("x", variant, 0, 3, []))
    assert (args.repair_attempts, args.fix_order) == (attempts, order)
    assert args.novelty and args.auto_fix and not args.single_shot


def test_repairs_count_as_calls_and_as_fixes_in_the_quality_numbers(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "r")
    failed = dict(new_result("shape", "channels", "h0"))
    for n, source in enumerate(("generator", "repair", "resample")):
        result = failed if n < 2 else dict(new_result("ok", "trained", "h2", val_accuracy=0.8))
        archive.record_attempt(0, n, source, "x", f"h{n}", result, "dry_run" if n < 2 else "train")
    archive.record_candidate(0, "x", dict(new_result("ok", "t", "h2", val_accuracy=0.8)), 10)
    archive.record_improvement(0, None, "p", "s", 5)
    q = run_quality(tmp_path / "r")
    assert (q["generator_calls"], q["improver_calls"], q["llm_calls"]) == (3, 1, 4)
    assert q["calls_to_first_trained"] == 3
    assert q["fixes_tried"] == {"repair": 1, "resample": 1} == q["fixes_succeeded"]


def test_a_shape_step_reads_the_same_in_the_repair_request_as_in_the_runner_report() -> None:
    from agent.check import locate
    from sandbox.inside import runner

    steps = [
        {"module": "features.0", "type": "Conv2d", "out": [2, 16, 28, 28]},
        {"module": "", "type": "flatten", "out": None},
        {"module": "head", "type": "Linear", "failed": True, "in_shape": [2, 1568]},
        {"module": "fc", "type": "Linear", "failed": True, "in_features_expected": 1568},
    ]
    for step in steps:
        assert locate._step_text(step) == runner._step_text(step)  # type: ignore[arg-type]
