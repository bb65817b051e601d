"""bench/search_quality.py's numbers from a run's archive, the rule that picks a default, and every
field present for a variant that trained nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from agent.flags import parse_setting_flags
from agent.results.ablate import VARIANTS, run_argv, run_id_for
from agent.results.quality import NUMBERS, run_quality
from agent.run import build_parser
from bench.search_quality import DEFAULT_VARIANTS, choose_default, collect, table
from sandbox.result import new_result
from tests.helpers.graph import run_to_end_state


def record(
    archive: RunArchive,
    iteration: int,
    kind: str,
    *,
    acc: float | None = None,
    message: str = "m",
    sources: tuple[str, ...] = ("generator",),
    improver: int = 0,
) -> None:
    """One iteration: its attempts and its row. An attempt followed by a re-ask was a repeat the
    novelty check caught; one followed by a fix failed lint; the last one is the result."""
    digest = f"h{iteration}"
    for n, source in enumerate(sources):
        after = sources[n + 1] if n + 1 < len(sources) else ""
        stage = "novelty" if after == "reask" else "lint" if after.startswith("fix:") else "train"
        result = new_result("duplicate" if stage == "novelty" else kind, message, digest)
        archive.record_attempt(iteration, n, source, "x", digest, dict(result), stage)
    row = new_result(kind, message, digest, val_accuracy=acc)
    archive.record_candidate(iteration, "x", dict(row), gen_tokens=10)
    archive.record_improvement(iteration, None, "p", "s", improver)


def test_calls_novelty_fixes_streaks_and_accuracy_from_the_archive(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "r")
    record(archive, 0, "runtime", message="NameError", improver=5)
    record(archive, 1, "runtime", message="NameError", sources=("generator", "reask"), improver=5)
    record(archive, 2, "runtime", message="NameError", improver=5)
    record(archive, 3, "ok", acc=0.5, sources=("generator", "fix:imports"), improver=5)
    record(archive, 4, "ok", acc=0.7, sources=("generator", "reask", "reask"))
    q = run_quality(tmp_path / "r")
    # Generator: 5 iterations + 3 re-asks; Improver: 4 rows with its tokens
    assert (q["generator_calls"], q["improver_calls"], q["llm_calls"]) == (8, 4, 12)
    assert q["iterations"] == 5 and q["trained"] == 2 and q["success_rate"] == pytest.approx(0.4)
    assert q["duplicates_avoided"] == 3
    assert q["fixes_tried"] == {"imports": 1} and q["fixes_succeeded"] == {"imports": 1}
    assert q["longest_identical_failure_streak"] == 3
    # iterations 0-2 (1+1, 2+1, 1+1 calls) then iteration 3's Generator call: 8
    assert q["calls_to_first_trained"] == 8
    assert q["best_val_accuracy"] == 0.7 and q["mean_val_accuracy"] == pytest.approx(0.6)
    assert q["tokens_per_trained"] == pytest.approx((50 + 20) / 2)


def test_a_run_that_trained_nothing_has_every_field(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "r")
    record(archive, 0, "no_code")
    q = run_quality(tmp_path / "r")
    assert set(NUMBERS) <= set(q)
    assert q["best_val_accuracy"] is None and q["calls_to_first_trained"] is None
    assert q["tokens_per_trained"] is None and q["success_rate"] == 0.0


def test_the_rule_picks_success_rate_then_best_accuracy(tmp_path: Path) -> None:
    plans: dict[str, list[tuple[str, float | None]]] = {
        "full": [("ok", 0.6), ("ok", 0.8), ("shape", None)],
        "single_shot": [("ok", 0.9), ("shape", None), ("shape", None)],
        "no_novelty": [("ok", 0.5), ("ok", 0.7), ("shape", None)],
        "best_of_k": [("no_code", None)] * 3,
    }
    for variant, plan in plans.items():
        archive = RunArchive(tmp_path / run_id_for("q", variant, 0))
        for i, (kind, acc) in enumerate(plan):
            record(archive, i, kind, acc=acc)
    results = collect(tmp_path, "q", list(plans), [0])
    # full and no_novelty tie on success rate; full's best accuracy is higher
    assert results["default"] == choose_default(results["variants"]) == "full"
    assert results["ratios_full_over_single_shot"]["success_rate"] == pytest.approx(2.0)
    nothing = results["variants"]["best_of_k"]
    assert all(key in nothing for key in NUMBERS) and nothing["best_val_accuracy"]["mean"] == 0
    assert nothing["mean_val_accuracy"]["mean"] is None
    text = table(
        {"name": "q", "model": "m", "dataset": "d", "llm_calls": 3, "seeds": [0], **results}
    )
    assert "The rule picks: **full**" in text and "| full / single_shot |" in text
    json.dumps(results)  # the --json file holds it as is


@pytest.mark.parametrize(
    ("variant", "off"),
    [
        ("single_shot", {"memory": True, "novelty": False, "auto_fix": False, "single_shot": True}),
        ("best_of_k", {"novelty": True, "auto_fix": False, "single_shot": True}),
        ("no_auto_fix", {"novelty": True, "auto_fix": False, "single_shot": False}),
        ("no_novelty", {"novelty": False, "auto_fix": True}),
        ("no_memory", {"memory": False, "improver": True}),
    ],
)
def test_each_benchmark_variant_sets_its_switches(variant: str, off: dict[str, bool]) -> None:
    args = build_parser().parse_args(run_argv("x", variant, 0, 3, []))
    assert {k: getattr(args, k) for k in off} == off
    assert args.prompt_style == "short"
    paper = build_parser().parse_args(run_argv("x", "paper_prompts", 0, 3, []))
    assert paper.prompt_style == "paper" and paper.novelty and paper.auto_fix


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_every_benchmark_variant_spends_its_budget_of_calls(
    variant: str, roles: dict[str, Any], tmp_path: Path
) -> None:
    """Each variant's own command line, run to a budget of 3 LLM calls on the scripted roles: it
    spends the budget, and the numbers the benchmark reads agree with the archive. (CI's smoke
    on the real llama-server, tests/integration/test_search_quality.py, runs three variants.)"""
    calls = 3
    argv = run_argv("x", variant, 0, calls, ["--llm-calls", str(calls)])
    flags = parse_setting_flags(argv[2:])  # past `--run-id x`: the run's id is no setting
    run_to_end_state(tmp_path, **flags)
    run = run_quality(tmp_path / "t")
    assert all(key in run for key in NUMBERS), variant
    assert run["llm_calls"] >= calls, (variant, run)
    rows = RunArchive(tmp_path / "t").rows()
    assert run["iterations"] == len(rows) >= 1
    asked = len(roles["generator"].prompts) + len(roles["improver"].prompts)
    assert run["llm_calls"] == asked, (variant, run, asked)  # the archive counts every call made
    no_improver = {"single_shot", "improver"} & set(VARIANTS[variant])
    assert (run["improver_calls"] == 0) == bool(no_improver), (variant, run)
