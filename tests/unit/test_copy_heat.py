"""A hotter Generator after it copied (`--copy-heat`): what counts as a copy (a duplicate, or the
layers of the network it was shown), how hot each copy in a row makes the next call, and the
loop asking hotter after copies and at the base again after a candidate that differs.

The loop tests drive the real graph with a Generator scripted by sampling seed (run seed +
iteration, + 1000 per re-ask) that records the temperature of every call, as the chat client
is built with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.archive.lineage import LineageLog, Parents
from agent.results.quality import run_quality
from agent.settings import Settings
from agent.steer.heat import CAP, STEP, copied, copies_before, copy_count, heated
from sandbox.result import new_result
from tests.helpers.graph import ScriptedEvaluator, run_to_end_state, use_evaluator


def net(width: int, accuracy: float, name: str = "features") -> str:
    return f"""import torch.nn as nn
# result: ok {accuracy}


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.{name} = nn.Sequential(nn.Conv2d(1, {width}, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.head(self.{name}(x))
"""


A, B, C = net(8, 0.5), net(16, 0.6), net(24, 0.55)
A_RENAMED = net(8, 0.52, name="body")  # A's layers in other words: a copy all the same


def test_each_copy_in_a_row_is_hotter_up_to_the_cap() -> None:
    assert [heated(0.7, n) for n in range(4)] == [0.7, 1.0, 1.3, 1.3]
    assert heated(0.2, 2) == round(0.2 + 2 * STEP, 3) and heated(1.5, 3) == 1.5 > CAP


def test_a_copy_is_a_duplicate_or_the_layers_of_the_network_shown() -> None:
    ok, duplicate = {"kind": "ok"}, {"kind": "duplicate"}
    assert copied(duplicate, None, None)
    assert copied(ok, A_RENAMED, A) and not copied(ok, B, A)
    assert not copied(ok, A, None)  # shown nothing: nothing to copy
    unread = "class Net:\n    width = 1\n"  # no layer read: never the same by layers
    assert not copied(ok, unread, unread)


def test_copies_in_a_row_are_counted_back_from_the_archive(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "r")
    lineage = LineageLog(tmp_path / "r")
    script = [(A, "ok", None), (A_RENAMED, "ok", 0), (B, "ok", 0), (A, "duplicate", 2)]
    script += [(A, "duplicate", 2), (C, "shape", 2), (C.replace("ok", "fixed"), "ok", 5)]
    for i, (code, kind, parent) in enumerate(script):
        result = new_result(kind, "m", f"h{i}", val_accuracy=0.5 if kind == "ok" else None)
        archive.record_candidate(i, code, dict(result))
        why = "root" if parent is None else "fix" if parent == 5 else "best"
        lineage.record(i, Parents(parent=parent, also_shown=None, why=why))
    # 6 kept the layers of the failed 5 it was asked to fix: a fix, not a copy
    assert [copies_before(archive, n) for n in range(8)] == [0, 0, 1, 0, 1, 2, 0, 0]
    assert copy_count(archive) == 3


# -- the loop --------------------------------------------------------------------------------------


class SeededChat:
    """Replies by the request's seed; records every call with the temperature it was built with."""

    def __init__(self, reply: Any, calls: list[dict[str, Any]], temperature: float) -> None:
        self.reply, self.calls, self.temperature = reply, calls, temperature

    def invoke(self, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
        seed = int(kwargs["seed"])
        self.calls.append({"seed": seed, "temperature": self.temperature})
        usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return AIMessage(content=self.reply(seed), usage_metadata=usage)


def run_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: list[str], **settings: Any
) -> list[dict[str, Any]]:
    """The loop with a Generator that writes `script[iteration]` on every ask of an iteration;
    every Generator call, in order."""
    calls: list[dict[str, Any]] = []
    advice = json.dumps({"problem": "p", "suggestion": "Widen the first convolution."})

    def chat_for(role: str, s: Settings) -> SeededChat:
        if role == "generator":
            reply = lambda seed: f"```python\n{script[seed % 1000]}```"  # noqa: E731
            return SeededChat(reply, calls, s.generator_temperature)
        return SeededChat(lambda seed: advice, [], s.improver_temperature)

    monkeypatch.setattr(nodes, "chat_for", chat_for)
    use_evaluator(monkeypatch, ScriptedEvaluator())
    run_to_end_state(tmp_path, iterations=len(script), **settings)
    return calls


def first_asks(calls: list[dict[str, Any]]) -> list[float]:
    return [c["temperature"] for c in calls if c["seed"] < 1000]


def test_the_generator_is_hotter_after_copies_and_back_at_the_base_after_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1-3 copy A on every ask (duplicates); 4 writes B; 5 writes C
    calls = run_loop(tmp_path, monkeypatch, [A, A, A, A, B, C], copy_heat=True)
    assert first_asks(calls) == [0.7, 0.7, 1.0, 1.3, 1.3, 0.7]
    # within an iteration the re-asks still step up from the iteration's own temperature
    reasks = [c["temperature"] for c in calls if c["seed"] % 1000 == 2]
    assert reasks == [1.0, 1.3, 1.6]
    kinds = [r["kind"] for r in RunArchive(tmp_path / "t").rows()]
    assert kinds == ["ok", "duplicate", "duplicate", "duplicate", "ok", "ok"]
    assert run_quality(tmp_path / "t")["copies"] == 3  # what the benchmark reports


def test_switched_off_every_iteration_asks_at_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = run_loop(tmp_path, monkeypatch, [A, A, A, A, B, C])
    assert first_asks(calls) == [0.7] * 6


def test_the_same_layers_in_other_words_count_as_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without the novelty check the renamed copy trains; its layers are its parent's
    script = [A, A_RENAMED, B, C]
    calls = run_loop(tmp_path, monkeypatch, script, copy_heat=True, novelty=False)
    assert first_asks(calls) == [0.7, 0.7, 1.0, 0.7]
    assert [r["kind"] for r in RunArchive(tmp_path / "t").rows()] == ["ok"] * 4
    assert run_quality(tmp_path / "t")["copies"] == 1


def test_the_setting_has_a_flag_and_an_ablation_variant() -> None:
    from agent.results.ablate import run_argv
    from agent.run import build_parser
    from bench.search_quality import DEFAULT_VARIANTS

    assert Settings().copy_heat is False
    on = build_parser().parse_args(run_argv("x", "copy_heat", 0, 3, []))
    full = build_parser().parse_args(run_argv("x", "full", 0, 3, []))
    assert on.copy_heat is True and full.copy_heat is False
    assert on.parent == "best" and not on.fill_in and on.novelty  # only this part changed
    assert "copy_heat" in DEFAULT_VARIANTS
