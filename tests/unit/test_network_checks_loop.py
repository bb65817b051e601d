"""The loop, driven by a scripted Generator that writes what the 0.5B coder wrote in issue 25: a
`forward` that skips `features` (with an unused LazyLinear in it), then the best network copied
with new comments, other names and an example-usage tail. The graph is the real one; the dry runs
and trainings are the real runner process (unsandboxed, 256 images). Each mechanism catches its
case, and switched off lets it through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agent.nodes as nodes
from agent.check.dead_layers import fix_skipped_features
from agent.settings import Settings
from sandbox.data import PreparedDataset
from tests.helpers.graph import ECHO, run_to_end_state, scripted_roles, use_evaluator
from tests.helpers.networks import SKIPS_FEATURES, WIDER, real_evaluator

_FIX = fix_skipped_features(SKIPS_FEATURES, {"kind": "dead_layers", "dead_layers": ["features.0"]})
assert _FIX is not None
FIXED = _FIX
# the best network shown in the prompt, copied back with its own words changed
COPIED = (
    FIXED.code.replace("self.head", "self.classifier")
    .replace("# x: (B, 1, 28, 28)", "# input images")
    .replace("# Example usage\nmodel = Net()\nprint(model)\n", "")
    + '\n\nif __name__ == "__main__":\n    net = Net()\n    print(net)\n'
)


def fence(code: str) -> str:
    return f"Here is the network:\n```python\n{code}```\n"


@pytest.fixture
def trained(mnist: PreparedDataset, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The real evaluator behind the graph's doors; the list of programs it trained."""
    ev = real_evaluator(mnist)
    programs: list[str] = []
    evaluate = ev.evaluate

    def counting(code: str) -> Any:
        programs.append(code)
        return evaluate(code)

    monkeypatch.setattr(ev, "evaluate", counting)
    use_evaluator(monkeypatch, ev)  # type: ignore[arg-type]
    return programs


def test_the_loop_fixes_the_skipped_features_and_re_asks_the_copied_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: list[str]
) -> None:
    chats = scripted_roles(
        monkeypatch, [fence(SKIPS_FEATURES), fence(COPIED), fence(WIDER)], [ECHO]
    )
    run_to_end_state(tmp_path, iterations=2)
    archive = nodes.run_archive(Settings(runs_dir=tmp_path), "t")
    attempts = [(a["iteration"], a["source"], a["kind"]) for a in archive.attempts()]
    assert attempts == [
        (0, "generator", "dead_layers"),  # features skipped: caught before training
        (0, "fix:skipped_features", "ok"),  # ... fixed on the host, then trained
        (1, "generator", "duplicate"),  # the copy: new text, the same network
        (1, "reask", "dead_layers"),  # the re-ask skips features too, and is fixed
        (1, "fix:skipped_features", "ok"),
    ]
    assert "computed the same network as attempt 0" in chats["generator"].prompts[2]
    assert len(trained) == 2 and all("x = self.features(x)" in code for code in trained)
    assert "512" in trained[1]  # the re-ask's wider head


def test_dead_layers_switched_off_the_mlp_trains_with_its_unused_lazy_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: list[str]
) -> None:
    scripted_roles(monkeypatch, [fence(SKIPS_FEATURES)], [ECHO])
    run_to_end_state(tmp_path, iterations=1, dead_layers=False)
    (row,) = nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()
    assert row["kind"] == "ok"  # no `runtime` from the runner's own step on the unused LazyLinear
    assert trained == [SKIPS_FEATURES]  # the MLP, its conv layers never run


def test_novelty_switched_off_the_copied_network_trains_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: list[str]
) -> None:
    scripted_roles(monkeypatch, [fence(SKIPS_FEATURES), fence(COPIED)], [ECHO])
    run_to_end_state(tmp_path, iterations=2, novelty=False)
    rows = nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()
    assert [r["kind"] for r in rows] == ["ok", "ok"]
    assert trained == [FIXED.code, COPIED]  # one network, trained twice
