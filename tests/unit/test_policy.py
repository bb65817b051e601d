"""The static policy: a program that reaches for files, processes, the network or eval is refused
before any sandbox, as `forbidden`; an honest network is not. Programs written the way a small
model writes them, and the way an attacker hides what it reaches for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sandbox.code import static_problem
from sandbox.policy import forbidden_reach
from tests.helpers.networks import policy_net as net

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ROOT / "tests" / "candidates"


HOSTILE = {
    "import os": (net(header="import os\n"), "imports os"),
    "import subprocess": (
        net("subprocess.run(['id'])", "import subprocess\n"),
        "imports subprocess",
    ),
    "from socket": (net(header="from socket import create_connection\n"), "imports from socket"),
    "dotted os.path": (net(header="import os.path as p\n"), "imports os.path"),
    "__import__": (net("__import__('os').system('id')"), "uses __import__"),
    "eval": (net("eval('1+1')"), "uses eval"),
    "exec": (net("exec('x = 1')"), "uses exec"),
    "open": (net("open('/etc/passwd').read()"), "uses open"),
    "builtins through a dunder": (
        net("().__class__.__base__.__subclasses__()"),
        "reaches for the attribute __base__",
    ),
    "getattr on a literal": (
        net("getattr(torch, '__builtins__')"),
        "'__builtins__' through getattr",
    ),
    "getattr on a computed name": (
        net("getattr(torch, 'o' + 's')"),
        "an attribute named at run time through getattr",
    ),
    "frame walking": (net("import sys as s"), "imports sys"),
    "torch's native loader": (net("torch.ops.load_library('x.so')"), "the attribute load_library"),
    "globals": (net("globals()['torch'] = None"), "uses globals"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_program_reaching_out_is_refused_with_one_line(name: str) -> None:
    code, said = HOSTILE[name]
    problem = static_problem(code)
    assert problem is not None and problem[0] == "forbidden", problem
    assert said in problem[1] and "\n" not in problem[1]
    assert problem[1].startswith("refused before training: the program ")


HONEST = {
    "plain": net(),
    "math, functools, collections, typing": net(
        "y = math.sqrt(4) + functools.reduce(operator.add, [1, 2])",
        "import math, functools, operator\nfrom collections import OrderedDict\n"
        "from typing import List\nimport torch.nn.functional as F\n",
    ),
    "layers named in a loop": net("layer = getattr(self, f'block{0}', None)"),
    "a literal getattr": net("act = getattr(nn, 'ReLU')()"),
    "torchvision and numpy": net(header="import numpy as np\nimport torchvision\n"),
    "a module the sandbox lacks is the lint's import failure": net(header="import timm\n"),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_an_honest_network_is_not_refused(name: str) -> None:
    assert static_problem(HONEST[name]) is None


@pytest.mark.parametrize("name", ["small_cnn", "honest_twin", "view_flatten", "nan_loss"])
def test_the_honest_corpus_and_the_reference_net_pass(name: str) -> None:
    assert static_problem((CANDIDATES / f"{name}.py").read_text()) is None
    assert static_problem((ROOT / "tools" / "reference_net.py").read_text()) is None


def test_every_hostile_program_of_the_red_team_that_imports_os_is_refused_here() -> None:
    """The red team's corpus needs the sandbox (its tests run without the precheck); with the
    policy on, none of the programs that reach for os, subprocess or socket would start one."""
    reaching = [
        path.name
        for path in sorted(CANDIDATES.glob("*.py"))
        if any(
            word in path.read_text() for word in ("import os", "import subprocess", "import socket")
        )
    ]
    assert len(reaching) >= 10
    kinds = {
        name: (static_problem((CANDIDATES / name).read_text()) or ("",))[0] for name in reaching
    }
    assert set(kinds.values()) == {"forbidden"}, kinds


def test_the_policy_reads_the_tree_and_never_raises_on_odd_calls() -> None:
    for source in ("getattr()", "getattr(*a)", "hasattr(x)", "setattr(self, name, 1)", "x.y.z"):
        forbidden_reach(ast.parse(source))  # total: a verdict or None, never an exception
