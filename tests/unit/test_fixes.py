"""The mechanical fixes, on modules broken the way a 0.5B code model breaks them.

The dry-run results below are written as sandbox/inside/runner.py reports them (its format is pinned by
tests/unit/test_dry_run.py); tests/integration/test_fixes.py gets them from real dry runs in the
Docker sandbox and proves that each fixed module then passes one.
"""

from __future__ import annotations

import ast
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

BROKEN = Path(__file__).parents[1] / "candidates" / "broken"


def broken(name: str) -> str:
    return (BROKEN / f"{name}.py").read_text()


def linear_failed(module: str, got: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"module": module, "type": "Linear", "out": None, "failed": True}
    step |= {"in_shape": [2, got], "in_features_expected": got}
    return {"kind": "shape", "message": "RuntimeError: mat1 and mat2 ...", "shape_trace": [step]}


def changed_lines(diff: str) -> list[str]:
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


# --- imports -----------------------------------------------------------------------------------


def test_sqrt_and_f_get_their_standard_imports() -> None:
    code = broken("sqrt_no_import")
    fix = fix_missing_imports(code, lint(code)["undefined_names"])
    assert fix is not None
    assert lint(fix.code)["kind"] is None
    assert changed_lines(fix.diff) == ["+import torch.nn.functional as F", "+from math import sqrt"]
    assert fix.code.index("from math import sqrt") < fix.code.index("class Net")
    assert fix.description == (
        "added `import torch.nn.functional as F` and `from math import sqrt` for names used"
        " without an import"
    )


@pytest.mark.parametrize(
    ("names", "lines"),
    [
        (["nn"], ["+import torch.nn as nn"]),
        (["torch", "math"], ["+import torch", "+import math"]),
        (["pi", "ceil", "OrderedDict"],
         ["+from math import pi, ceil", "+from collections import OrderedDict"]),
        (["np"], ["+import numpy as np"]),
    ],
)  # fmt: skip
def test_each_standard_name_gets_its_import(names: list[str], lines: list[str]) -> None:
    code = '"""A docstring first."""\nfrom __future__ import annotations\n\nclass Net:\n    pass\n'
    code += "".join(f"{name}\n" for name in names)  # used, never imported
    fix = fix_missing_imports(code, names)
    assert fix is not None and changed_lines(fix.diff) == lines
    assert fix.code.startswith('"""A docstring first."""\nfrom __future__ import annotations\n')


@pytest.mark.parametrize(
    "names",
    [
        [],
        ["my_helper"],  # nobody can know what it was
        ["sqrt", "my_helper"],  # a fix that leaves a NameError is no fix
        ["e"],  # math.e, or a typo? not a safe guess
    ],
)
def test_names_no_standard_import_provides_get_no_fix(names: list[str]) -> None:
    assert fix_missing_imports(broken("sqrt_no_import"), names) is None


def test_a_local_used_before_assignment_is_not_imported_over() -> None:
    code = (
        "class Net:\n    def f(self):\n        y = math + 1\n        math = 2\n        return y\n"
    )
    assert lint(code)["undefined_names"] == ["math"]
    assert fix_missing_imports(code, ["math"]) is None  # the import would not reach the local


# --- Linear in_features ------------------------------------------------------------------------


def test_a_linear_inside_sequential_gets_the_size_it_receives() -> None:
    code = broken("linear_in_features")  # nn.Linear(64 * 28 * 28, 128) fed 64 * 7 * 7
    fix = fix_linear_in_features(code, linear_failed("classifier.1", 3136))
    assert fix is not None
    assert changed_lines(fix.diff) == [
        "-            nn.Linear(64 * 28 * 28, 128),  # 50176",
        "+            nn.Linear(3136, 128),  # 50176",
    ]
    assert fix.description.startswith("`classifier.1`: `nn.Linear(64 * 28 * 28, 128)` -> in_")


def test_or_becomes_a_lazy_linear() -> None:
    code = broken("linear_in_features")
    fix = fix_linear_in_features(code, linear_failed("classifier.1", 3136), lazy=True)
    assert fix is not None and "+            nn.LazyLinear(128),  # 50176" in changed_lines(
        fix.diff
    )


NESTED = """
import torch.nn as nn
from torch.nn import Linear


class Head(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.layers = nn.ModuleList([nn.ReLU(), Linear(in_features=width * 2, out_features=10)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc: nn.Module = nn.Linear(128, 64, bias=False)
        self.head = Head(64)
"""


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        ("fc", "nn.Linear(128, 64, bias=False)", "nn.Linear(784, 64, bias=False)"),
        ("head.layers.1", "Linear(in_features=width * 2, out_features=10)",
         "Linear(in_features=784, out_features=10)"),
    ],
)  # fmt: skip
def test_a_linear_is_found_by_its_module_path(path: str, before: str, after: str) -> None:
    fix = fix_linear_in_features(NESTED, linear_failed(path, 784))
    assert fix is not None and fix.code == NESTED.replace(before, after)


@pytest.mark.parametrize(
    ("code", "path"),
    [
        (NESTED, "head.layers.0"),  # a ReLU is not a Linear
        (NESTED, "head.layers.7"),  # no such index
        (NESTED, "fc2"),  # no such attribute
        (NESTED, "?"),  # a module built inside forward: no place to fix
        (NESTED + "\nclass Other(Head):\n    pass\n\nother = Head(32)\n", "head.layers.1"),
        (NESTED.replace("self.head = Head(64)", "self.head = Head(64) if num_classes else None")
         + "\n", "head.layers.1"),
        (NESTED.replace("        self.head = Head(64)",
                        "        self.fc = nn.Linear(64, 64)\n        self.head = Head(64)"), "fc"),
    ],
    ids=["not-linear", "bad-index", "no-attr", "stray", "class-built-twice", "not-a-call",
         "assigned-twice"],
)  # fmt: skip
def test_a_linear_that_cannot_be_located_safely_is_left_alone(code: str, path: str) -> None:
    assert fix_linear_in_features(code, linear_failed(path, 784)) is None


def test_only_a_trace_that_proves_the_size_counts() -> None:
    code = broken("linear_in_features")
    assert fix_linear_in_features(code, {"kind": "shape", "message": "mat1 and mat2"}) is None
    no_size = linear_failed("classifier.1", 3136)
    del no_size["shape_trace"][0]["in_features_expected"]  # e.g. a 4-D input: a flatten is missing
    assert fix_linear_in_features(code, no_size) is None
    forged = linear_failed("classifier.1", 3136)
    forged["shape_trace"][0]["in_features_expected"] = "3136; import os"
    assert fix_linear_in_features(code, forged) is None


# --- view(-1, N) -------------------------------------------------------------------------------

VIEW_FAILED = {
    "kind": "shape",
    "message": "RuntimeError: shape '[-1, 3584]' is invalid for input of size 512 (during forward)",
    "shape_trace": [{"module": "", "type": "Net", "out": None, "failed": True}],
}


def test_a_view_with_the_wrong_size_becomes_a_flatten() -> None:
    fix = fix_view_size(broken("view_wrong_size"), VIEW_FAILED)
    assert fix is not None
    assert changed_lines(fix.diff) == ["-        x = x.view(-1, 3584)", "+        x = x.flatten(1)"]


def test_a_view_written_as_a_product_is_found_too() -> None:
    code = broken("view_wrong_size").replace("x.view(-1, 3584)", "x.reshape(x.size(0), 56 * 64)")
    fix = fix_view_size(code, VIEW_FAILED)
    assert fix is not None and "x = x.flatten(1)" in fix.code


def test_a_view_fix_needs_the_failure_in_forward_and_one_candidate_call() -> None:
    code = broken("view_wrong_size")
    in_a_module = {**VIEW_FAILED, "shape_trace": [{"module": "fc1", "type": "Linear", "out": None,
                                                  "failed": True}]}  # fmt: skip
    assert fix_view_size(code, in_a_module) is None
    twice = code.replace(
        "x = F.relu(self.fc1(x))", "y = x.view(-1, 3584)\n        x = F.relu(self.fc1(x))"
    )
    assert fix_view_size(twice, VIEW_FAILED) is None


# --- the skeleton's head -----------------------------------------------------------------------

HEAD_ERROR = "AttributeError: 'Net' object has no attribute 'head' (during forward)"


def test_a_forgotten_head_is_defined_at_the_end_of_init() -> None:
    code = broken("head_missing")
    fix = fix_missing_head(code, {"kind": "runtime", "message": HEAD_ERROR})
    assert fix is not None
    head = "nn.Sequential(nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(num_classes))"
    assert changed_lines(fix.diff) == [f"+        self.head = {head}"]
    tree = ast.parse(fix.code)
    net = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net")
    init = next(n for n in net.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert ast.unparse(init.body[-1]) == f"self.head = {head}"


def test_the_head_uses_the_init_parameter_or_the_given_count() -> None:
    code = broken("head_missing").replace("num_classes: int = 10", "n_classes=10")
    fix = fix_missing_head(code, HEAD_ERROR)
    assert fix is not None and "nn.LazyLinear(n_classes))" in fix.code
    no_param = broken("head_missing").replace(", num_classes: int = 10", "")
    assert fix_missing_head(no_param, HEAD_ERROR) is None
    fix = fix_missing_head(no_param, HEAD_ERROR, num_classes=7)
    assert fix is not None and "nn.LazyLinear(7))" in fix.code


def test_a_head_fix_without_nn_imports_it() -> None:
    code = broken("head_missing").replace(
        "import torch.nn as nn\n", "from torch.nn import Module\n"
    )
    fix = fix_missing_head(code, HEAD_ERROR)
    assert fix is not None and "import torch.nn as nn\n" in fix.code


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (broken("head_missing"), "AttributeError: 'Net' object has no attribute 'body'"),
        (broken("head_missing").replace("return self.head(x)", "return x"), HEAD_ERROR),
        (broken("head_missing").replace("        self.block2",
                                        "        self.head = None\n        self.block2"),
         HEAD_ERROR),
    ],
    ids=["another-attribute", "head-never-used", "head-assigned"],
)  # fmt: skip
def test_a_head_fix_only_for_a_head_that_was_forgotten(code: str, error: str) -> None:
    assert fix_missing_head(code, error) is None


# --- the example usage -------------------------------------------------------------------------

TAIL_ERROR = (
    "FileNotFoundError: [Errno 2] No such file or directory: 'path_to_your_model.pth'"
    " (during import)"
)


def test_an_example_usage_that_fails_at_import_is_removed() -> None:
    code = broken("example_usage_tail")
    fix = fix_example_usage(code, TAIL_ERROR)
    assert fix is not None
    assert fix.code == code[: code.index("\n\n\n# Example usage")] + "\n"
    assert "model" not in lint(fix.code)["undefined_names"]


def test_an_example_usage_stays_when_it_is_not_the_cause() -> None:
    code = broken("example_usage_tail")
    assert fix_example_usage(code, "NameError: name 'x' is not defined (during forward)") is None
    guarded = broken("sqrt_no_import")  # its example runs only as __main__: never in the sandbox
    assert fix_example_usage(guarded, TAIL_ERROR) is None
    used = code.replace("self.fc2 = nn.Linear(128, num_classes)", "self.fc2 = nn.Linear(WIDTH, 10)")
    assert fix_example_usage(used + "WIDTH = 128\n", TAIL_ERROR) is None


# --- every fixer, on input it must not trust ---------------------------------------------------


@pytest.mark.parametrize("code", ["class Net(:\n", "x" * 70_000, "class Net:\r    pass\r"])
def test_unparsable_or_oversized_code_gets_no_fix(code: str) -> None:
    assert fix_missing_imports(code, ["sqrt"]) is None
    assert fix_linear_in_features(code, linear_failed("fc", 10)) is None
    assert fix_view_size(code, VIEW_FAILED) is None
    assert fix_missing_head(code, HEAD_ERROR) is None
    assert fix_example_usage(code, TAIL_ERROR) is None


# --- one entry point ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem", "changed"),
    [
        ("sqrt_no_import", None, "+from math import sqrt"),
        ("sqrt_no_import", {"message": "NameError: name 'sqrt' is not defined (during init)"},
         "+from math import sqrt"),
        ("linear_in_features", linear_failed("classifier.1", 3136), "+            nn.Linear(3136,"),
        ("view_wrong_size", VIEW_FAILED, "+        x = x.flatten(1)"),
        ("head_missing", {"kind": "runtime", "message": HEAD_ERROR}, "+        self.head = nn."),
        ("example_usage_tail", {"kind": "runtime", "message": TAIL_ERROR}, "-model.eval()"),
    ],
    ids=["lint", "name-error", "linear", "view", "head", "tail"],
)  # fmt: skip
def test_mechanical_fix_picks_the_fixer_for_the_problem(
    name: str, problem: dict[str, Any] | None, changed: str
) -> None:
    code = broken(name)
    fix = mechanical_fix(code, problem if problem is not None else dict(lint(code)))
    assert fix is not None
    assert any(line.startswith(changed) for line in changed_lines(fix.diff)), fix.diff


def test_mechanical_fix_has_nothing_for_a_real_design_error() -> None:
    problem = {"kind": "shape", "message": "Net output has shape (2, 7), expected (2, 10)"}
    assert mechanical_fix(broken("linear_in_features"), problem) is None
    assert mechanical_fix(broken("linear_in_features"), {"undefined_names": "sqrt"}) is None
