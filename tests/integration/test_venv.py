"""The process sandbox runs the Python the user runs: a virtualenv, symlinked or copied, even
one under /tmp (which the sandbox's private /tmp would otherwise hide).

CI installs the project into a virtualenv, as users do: there the base interpreter cannot import
torch, so a sandbox that fell back to it would fail every candidate (asserted first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sandbox.backends.process import ProcessBackend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.paths import ROOT
from tests.helpers.sandbox_jobs import QUICK, limits

REFERENCE_NET = ROOT / "tools" / "reference_net.py"
LIMITS = limits(timeout_s=300, memory_mb=3072)
# Fails on purpose, reporting which interpreter ran it and whether the venv's own module loads.
PROBE = """
import json, sys
try:
    import nasloop_venv_probe
    own = nasloop_venv_probe.OWN
except ImportError:
    own = None
raise RuntimeError("PROBE " + json.dumps({"prefix": sys.prefix, "own": own}))
"""
# The same two evaluations, run by the interpreter under test (argv: data root).
SCRIPT = f"""
import json, sys
from pathlib import Path
from sandbox.backends.base import Limits
from sandbox.backends.process import ProcessBackend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
evaluator = Evaluator(PreparedDataset.load(Path(sys.argv[1])), ProcessBackend(), {QUICK!r},
                      Limits(**{LIMITS.__dict__!r}), precheck=False)
probe = evaluator.evaluate({PROBE!r})
reference = evaluator.evaluate(Path({str(REFERENCE_NET)!r}).read_text())
print(json.dumps({{"probe": probe["message"], "reference": reference["kind"],
                  "message": reference["message"]}}))
"""


def probed(message: str) -> dict[str, str | None]:
    text = message.split("PROBE ", 1)[1].rsplit(" (during import)", 1)[0]
    info: dict[str, str | None] = json.loads(text)
    return info


def test_ci_runs_from_a_virtualenv_whose_base_python_cannot_import_torch() -> None:
    ci = os.environ.get("CI") == "true"
    if sys.prefix == sys.base_prefix:
        if ci:
            pytest.fail(f"CI must run the tests from a virtualenv (.ci/run), not {sys.prefix}")
        pytest.skip("not run from a virtualenv; CI is (.ci/run)")
    base = getattr(sys, "_base_executable", "") or os.path.join(sys.base_prefix, "bin", "python3")
    done = subprocess.run(
        [base, "-I", "-c", "import torch"], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        if ci:
            pytest.fail(
                f"the base interpreter {base} imports torch: CI would not catch a sandbox "
                "that falls back to it; install into the virtualenv only"
            )
        pytest.skip(f"this machine's base interpreter {base} has torch too; CI's has not")
    assert "No module named 'torch'" in done.stderr, done.stderr


def test_the_process_sandbox_trains_the_reference_net_with_this_interpreter(
    mnist: PreparedDataset,
) -> None:
    evaluator = Evaluator(mnist, ProcessBackend(), dict(QUICK), LIMITS, precheck=False)
    assert probed(evaluator.evaluate(PROBE)["message"])["prefix"] == sys.prefix
    result = evaluator.evaluate(REFERENCE_NET.read_text())
    assert result["kind"] == "ok", result


@pytest.mark.parametrize("layout", ["symlinks", "copies"])
def test_a_virtualenv_under_tmp_is_the_interpreter_the_sandbox_runs(
    mnist: PreparedDataset, tmp_path: Path, layout: str
) -> None:
    assert str(tmp_path).startswith("/tmp/")  # what bubblewrap's private /tmp would hide
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", f"--{layout}", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    # the packages of the environment running this test (torch, nasloop's deps), by a .pth in
    # the venv's own site-packages: only an interpreter started as this venv sees them
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "running_env.pth").write_text("\n".join(sorted(paths)) + "\n")
    (site / "nasloop_venv_probe.py").write_text(f"OWN = {str(venv)!r}\n")
    python = venv / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NASLOOP_", "PYTHON"))}
    done = subprocess.run(
        [str(python), "-c", SCRIPT, str(mnist.root)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert probed(report["probe"]) == {"prefix": str(venv), "own": str(venv)}, report
    assert report["reference"] == "ok", report
