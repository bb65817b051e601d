"""The static lint: certain problems of a candidate found on the host, without running any of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.check.static import MAX_SOURCE_BYTES, lint

BROKEN = Path(__file__).parents[1] / "candidates" / "broken"
GOOD = """
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from collections import OrderedDict

class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(784, num_classes)
        self.scale = 1 / math.sqrt(784)

    def forward(self, x):
        return self.fc(F.relu(x.flatten(1)) * self.scale)
"""


def broken(name: str) -> str:
    return (BROKEN / f"{name}.py").read_text()


def test_a_clean_module_has_nothing_to_report() -> None:
    assert lint(GOOD) == {"kind": None, "message": "", "undefined_names": [], "line": None}


def test_names_used_without_import_are_found_in_order() -> None:
    report = lint(broken("sqrt_no_import"))
    assert report["kind"] == "runtime"
    assert report["undefined_names"] == ["sqrt", "F"]
    assert report["line"] == 17
    assert report["message"] == (
        "NameError ahead: names `sqrt` (line 17), `F` (line 20) used but never defined or imported"
    )


def test_a_module_the_sandbox_lacks_is_a_bad_import() -> None:
    report = lint(GOOD.replace("import math", "import timm.layers as layers"))
    assert (report["kind"], report["line"]) == ("import", 2)
    assert report["message"].startswith("No module named 'timm' in the sandbox (line 2)")
    assert "torch, torchvision" in report["message"]
    assert lint(GOOD.replace("import math", "from .layers import Block"))["kind"] == "import"
    # the standard library, numpy and torchvision are there
    assert (
        lint(GOOD.replace("import math", "import math, numpy as np, torchvision"))["kind"] is None
    )


def test_parse_errors_and_a_missing_net_come_from_the_one_static_gate() -> None:
    report = lint("import torch\nclass Net(nn.Module:\n    pass\n")
    assert report["kind"] == "syntax" and report["line"] == 2
    assert report["message"].startswith("SyntaxError")
    assert lint(GOOD.replace("class Net", "class Model"))["kind"] == "no_net"


def test_a_star_import_gets_the_benefit_of_the_doubt() -> None:
    code = GOOD.replace("import torch.nn.functional as F", "from torch.nn.functional import *")
    assert lint(code)["kind"] is None


def test_a_local_used_before_assignment_is_reported() -> None:
    code = GOOD.replace(
        "        return self.fc", "        y = z + 1\n        z = 2\n        return self.fc"
    )
    report = lint(code)
    assert (report["kind"], report["undefined_names"]) == ("runtime", ["z"])


def test_names_shown_are_bounded() -> None:
    uses = "\n".join(f"        a{i} = undefined_{i}" for i in range(40))
    code = GOOD.replace("        return self.fc", uses + "\n        return self.fc")
    report = lint(code)
    assert len(report["undefined_names"]) == 40
    assert report["message"].endswith("and 35 more used but never defined or imported")


@pytest.mark.parametrize(
    "code",
    [
        "x = " + "(" * 300 + ")" * 300 + "\nclass Net: pass\n",  # too many nested parentheses
        "x = " + "-" * 200_000 + "1\nclass Net: pass\n",  # deep unary chain: recursion
        "class Net: pass\n" + "x = 1\n" * (MAX_SOURCE_BYTES // 6),  # over the size cap
        "class Net: pass\nx = '\x00'\n" + "\x00",  # a NUL byte
    ],
    ids=["nested-parentheses", "deep-recursion", "oversized", "nul-byte"],
)
def test_hostile_sources_are_refused_in_one_line(code: str) -> None:
    report = lint(code)
    assert report["kind"] == "syntax", report
    assert "\n" not in report["message"] and len(report["message"]) <= 300
