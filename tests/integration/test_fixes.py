"""The mechanical fixes against the real sandbox: each broken module fails a real dry run in the
warm Docker worker, the fixer rewrites it from what the lint or the dry run reported, and the
fixed module then passes a real dry run (built, one forward pass, output (2, 10)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.check.mechanical import (
    fix_example_usage,
    fix_linear_in_features,
    fix_missing_head,
    fix_missing_imports,
    fix_view_size,
    mechanical_fix,
)
from agent.check.static import lint
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.sandbox_jobs import limits

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

BROKEN = Path(__file__).parents[1] / "candidates" / "broken"
LIMITS = limits(timeout_s=60)


@pytest.fixture
def dry_run(warm_backend: Any, mnist: PreparedDataset) -> Any:
    evaluator = Evaluator(mnist, warm_backend, {"threads": 1}, LIMITS)

    def run(code: str) -> dict[str, Any]:
        return dict(evaluator.dry_run(code))

    return run


def broken(name: str) -> str:
    return (BROKEN / f"{name}.py").read_text()


def assert_passes(result: dict[str, Any]) -> None:
    assert (result["kind"], result["message"]) == ("ok", "dry run ok: output (2, 10)"), result


def test_missing_imports_fixed_from_the_lint(dry_run: Any) -> None:
    code = broken("sqrt_no_import")
    before = dry_run(code)
    assert (before["kind"], before["message"].split(" (")[0]) == (
        "runtime",
        "NameError: name 'sqrt' is not defined",
    )
    fix = fix_missing_imports(code, lint(code)["undefined_names"])
    assert fix is not None
    assert_passes(dry_run(fix.code))


@pytest.mark.parametrize("lazy", [False, True], ids=["in-features", "lazy-linear"])
def test_a_wrong_flattened_size_fixed_from_the_shape_trace(dry_run: Any, lazy: bool) -> None:
    code = broken("linear_in_features")  # nn.Linear(64 * 28 * 28, 128) fed 64 * 7 * 7
    before = dry_run(code)
    assert before["kind"] == "shape" and "(2x3136 and 50176x128)" in before["message"]
    fix = fix_linear_in_features(code, before, lazy=lazy)
    assert fix is not None
    assert_passes(dry_run(fix.code))


def test_a_wrong_view_fixed_in_two_steps(dry_run: Any) -> None:
    code = broken("view_wrong_size")  # x.view(-1, 3584) for 256 values, then Linear(3584, 120)
    first = dry_run(code)
    assert first["kind"] == "shape" and "(Net.forward) Net FAILED" in first["message"]
    assert fix_linear_in_features(code, first) is None  # the Linear is not what failed yet
    flatten = fix_view_size(code, first)
    assert flatten is not None
    second = dry_run(flatten.code)
    assert second["kind"] == "shape" and "fc1 Linear FAILED on input (2, 256)" in second["message"]
    sized = fix_linear_in_features(flatten.code, second)
    assert sized is not None
    assert_passes(dry_run(sized.code))


def test_a_forgotten_head_fixed_from_the_error(dry_run: Any) -> None:
    code = broken("head_missing")
    before = dry_run(code)
    assert before["kind"] == "runtime" and "has no attribute 'head'" in before["message"]
    fix = fix_missing_head(code, before)
    assert fix is not None
    assert_passes(dry_run(fix.code))


def test_an_example_usage_tail_removed(dry_run: Any) -> None:
    code = broken("example_usage_tail")
    before = dry_run(code)
    assert before["kind"] == "runtime" and "path_to_your_model.pth" in before["message"]
    fix = fix_example_usage(code, before)
    assert fix is not None
    assert_passes(dry_run(fix.code))


@pytest.mark.parametrize(
    "name",
    ["sqrt_no_import", "linear_in_features", "view_wrong_size", "head_missing",
     "example_usage_tail"],
)  # fmt: skip
def test_the_cascade_repairs_every_broken_module(dry_run: Any, name: str) -> None:
    """Lint, then dry runs, each failure handed to mechanical_fix: as the check stage will."""
    code, fixes = broken(name), list[str]()
    problem: dict[str, Any] = dict(lint(code))
    if problem["kind"] is None:
        problem = dry_run(code)
    while problem["kind"] != "ok" and len(fixes) < 3:
        fix = mechanical_fix(code, problem)
        assert fix is not None, problem
        code = fix.code
        fixes.append(fix.description)
        problem = dry_run(code)
    assert_passes(problem)
    assert 1 <= len(fixes) <= 2, fixes
