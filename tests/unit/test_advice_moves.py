"""Concrete, new, checkable advice (issue 25): the menu of layer-level moves read from a network,
repeated or generic advice replaced by an untried move, whether the next network followed it, the
numbers bench/search_quality.py reports, and archives from before the advice table.

The loop tests drive the real graph with an Improver that says one generic sentence after every
result, as the 0.5B model did: with `concrete_advice` on, the Generator gets a move naming a
layer, a different one each time; switched off, the sentence reaches the Generator unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.prompts import SUGGESTION_CHARS, improver_messages
from agent.replies.advice import parse_improvement
from agent.replies.advice_moves import (
    advice_menu,
    closed_triple,
    followed,
    is_generic,
    said_expect,
    settle_advice,
)
from agent.replies.layers import measure, read_layers
from agent.results.quality import NUMBERS, run_quality
from agent.results.show import story, story_text
from agent.settings import Settings
from agent.state import Candidate, Pending, TaskInfo, Triple, push_triples
from sandbox.result import new_result
from tests.fakes.small_model import STUCK_ADVICE
from tests.helpers.graph import RecordingChat, ScriptedEvaluator, run_to_end_state, use_evaluator

TASK = TaskInfo(dataset="mnist5k", input_shape=[1, 28, 28], num_classes=10, n_train=600)
STUCK = json.loads(STUCK_ADVICE)["suggestion"]

# Two conv blocks, the first without BatchNorm, a two-layer head: what a small coder writes
NET = """import torch.nn as nn
# result: ok 0.50


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.LazyLinear(num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))
"""
# The BatchNorm the first move asks for, added
WITH_BN = NET.replace(
    "nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()",
    "nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()",
).replace("ok 0.50", "ok 0.55")
# WITH_BN in other words: the same layers, so no move is followed
RENAMED = WITH_BN.replace("self.head", "self.classifier").replace("ok 0.55", "ok 0.56")
MLP = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.body(x)
"""


def trained(code: str, iteration: int = 0, kind: str = "ok") -> Candidate:
    result = new_result(kind, "trained" if kind == "ok" else "failed", "h", val_accuracy=0.5)
    return Candidate(iteration=iteration, code=code, result=result)


def advice(suggestion: str, problem: str = "p") -> Pending:
    return Pending(problem=problem, suggestion=suggestion)


def triple(suggestion: str, move: str | None = None) -> Triple:
    t = Triple(iteration=0, problem="p", suggestion=suggestion, outcome="ok")
    if move is not None:
        t["move"] = move
    return t


class TestLayers:
    def test_the_layers_of_a_net_in_the_order_written(self) -> None:
        layers = read_layers(NET)
        assert layers is not None
        assert [x.kind for x in layers][:5] == [
            "Conv2d",
            "ReLU",
            "MaxPool2d",
            "Conv2d",
            "BatchNorm2d",
        ]
        assert [x.width for x in layers if x.of("conv")] == [16, 32]
        assert layers[0].source == "nn.Conv2d(1, 16, 3, padding=1)"
        counts = {m: measure(layers, m) for m in ("conv", "batchnorm", "channels", "hidden")}
        assert counts == {"conv": 2, "batchnorm": 1, "channels": 48, "hidden": 128}

    def test_other_spellings_keywords_and_strides(self) -> None:
        code = (
            "import torch\nfrom torch import nn\nfrom torch.nn import Conv2d as C\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.a = torch.nn.Conv2d(in_channels=1, out_channels=8, kernel_size=3)\n"
            "        self.b = C(8, 24, 3, 2)\n"
            "        self.c = nn.LazyConv2d(40, 3, stride=(2, 2))\n"
            "        self.d = nn.Sequential(nn.Dropout(0.5))\n"
        )
        layers = read_layers(code)
        assert layers is not None
        assert [(x.kind, x.width, x.stride) for x in layers] == [
            ("Conv2d", 8, None),
            ("Conv2d", 24, 2),
            ("LazyConv2d", 40, 2),
            ("Dropout", None, None),
        ]
        assert measure(layers, "downsample") == 2 and measure(layers, "dropout") == 1

    def test_unreadable_code_has_no_layers(self) -> None:
        assert read_layers("class Net(:") is None and read_layers("") is None
        assert read_layers("x = 1") == [] and measure(None, "conv") is None


class TestMenu:
    def test_the_menu_of_a_known_net(self) -> None:
        menu = advice_menu(trained(NET), TASK)
        assert [(m.id, m.expect) for m in menu] == [
            ("batchnorm", "batchnorm>1"),  # the first conv has none
            ("conv_block", "conv>2"),  # 28 -> 14 -> 7: room for one more pooled block
            ("wider", "channels>48"),  # the last conv narrow enough to double: 32 -> 64
            ("wider_head", "hidden>128"),
            ("dropout", "dropout>0"),
        ]
        assert menu[0].text.startswith(
            "Put nn.BatchNorm2d(16) right after the first convolution "
            "(`nn.Conv2d(1, 16, 3, padding=1)`)"
        )
        assert "nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)" in menu[1].text
        assert "from 32 to 64" in menu[2].text and "from 128 to 256" in menu[3].text
        assert all(len(m.text) <= SUGGESTION_CHARS for m in menu)  # the memory keeps it whole

    def test_an_mlp_is_offered_a_conv_stem_first(self) -> None:
        menu = advice_menu(trained(MLP), TASK)
        assert menu[0].id == "conv_stem" and menu[0].expect == "conv>0"
        assert "nn.Conv2d(1, 32, 3, padding=1)" in menu[0].text

    def test_no_menu_after_a_failure_or_for_a_net_it_cannot_read(self) -> None:
        assert advice_menu(trained(NET, kind="shape"), TASK) == []
        assert advice_menu(trained("class Net(:"), TASK) == []
        assert advice_menu(trained("class Net:\n    width = 1\n"), TASK) == []  # no nn layers
        assert advice_menu(None, TASK) == []

    def test_the_improver_sees_the_menu_after_a_success_only(self) -> None:
        moves = [m.text for m in advice_menu(trained(NET), TASK)]
        text = str(
            improver_messages(TASK, last=trained(NET), best=None, window=[], moves=moves)[1].content
        )
        assert "## Moves for this network\n" in text and "\n1. Put nn.BatchNorm2d(16)" in text
        assert "a move from the list (its number or its words in `suggestion`)" in text
        failed = trained(NET, kind="shape")
        text = str(
            improver_messages(TASK, last=failed, best=None, window=[], moves=moves)[1].content
        )
        assert "## Moves" not in text and "Your ONLY job is to fix this error" in text


class TestSettle:
    MENU = advice_menu(trained(NET), TASK)

    def test_generic_advice_becomes_the_first_move(self) -> None:
        assert is_generic(STUCK)
        settled = settle_advice(advice(STUCK, "too simple"), self.MENU, [], NET)
        assert settled == Pending(
            problem="too simple",
            suggestion=self.MENU[0].text,
            source="menu",
            move="batchnorm",
            expect="batchnorm>1",
        )

    def test_repeated_advice_becomes_the_first_untried_move(self) -> None:
        said = "Double the channels of the second conv to 64."
        window = [
            triple(self.MENU[0].text, "batchnorm"),
            triple("double the CHANNELS of the second conv, to 64!"),
        ]
        settled = settle_advice(advice(said), self.MENU, window, NET)
        assert (settled["source"], settled.get("move")) == ("menu", "conv_block")

    def test_concrete_new_advice_stays_the_improvers_and_is_checked_by_its_words(self) -> None:
        said = "Add dropout of 0.3 before the final linear layer."
        settled = settle_advice(advice(said), self.MENU, [triple("something else")], NET)
        assert settled == Pending(
            problem="p", suggestion=said, source="improver", expect="dropout>0"
        )

    def test_a_pick_by_number_or_words_becomes_that_move(self) -> None:
        for said in ("2", "move 2", "Move 2: add a block", self.MENU[1].text.upper()):
            settled = settle_advice(advice(said), self.MENU, [], NET)
            assert (settled["source"], settled["suggestion"]) == ("improver", self.MENU[1].text)
        assert parse_improvement('{"problem": "x", "move": 3}') == {
            "problem": "x",
            "suggestion": "move 3",
        }
        # a pick the window already tried is a repeat like any other
        settled = settle_advice(
            advice("1"), self.MENU, [triple(self.MENU[0].text, "batchnorm")], NET
        )
        assert (settled["source"], settled.get("move")) == ("menu", "conv_block")

    def test_when_every_move_was_tried_the_newest_is_not_given_again(self) -> None:
        window = [triple(m.text, m.id) for m in self.MENU]
        settled = settle_advice(advice(STUCK), self.MENU, window, NET)
        assert settled["suggestion"] == self.MENU[0].text != window[-1]["suggestion"]

    def test_without_a_menu_the_words_stand(self) -> None:
        # after a failure, or with concrete_advice off: no replacement, only the check
        settled = settle_advice(advice(STUCK), [], [triple(STUCK)], NET)
        assert settled == Pending(problem="p", suggestion=STUCK, source="improver")

    @pytest.mark.parametrize(
        ("said", "expect"),
        [
            ("Add BatchNorm2d after each convolution.", "batchnorm>1"),
            ("Reduce overfitting by adding dropout before the head.", "dropout>0"),
            ("Widen the conv layers.", "channels>48"),
            ("Use fewer channels in the second stage.", "channels<48"),
            ("Add a third conv layer with 64 filters.", "channels>48"),
            (STUCK, None),
        ],
    )
    def test_what_the_improvers_words_expect(self, said: str, expect: str | None) -> None:
        assert said_expect(said, read_layers(NET)) == expect


class TestFollowed:
    PENDING = settle_advice(advice(STUCK), advice_menu(trained(NET), TASK), [], NET)

    def test_followed_when_the_next_net_adds_the_batchnorm_not_for_a_copy(self) -> None:
        assert self.PENDING["expect"] == "batchnorm>1"
        assert followed(self.PENDING["expect"], WITH_BN) is True
        assert followed(self.PENDING["expect"], NET) is False
        assert (
            followed(self.PENDING["expect"], RENAMED.replace("nn.BatchNorm2d(16), ", "")) is False
        )
        assert followed(self.PENDING["expect"], "class Net(:") is None
        assert followed(None, WITH_BN) is None and followed("nonsense>1", WITH_BN) is None

    def test_the_closed_triple_carries_source_move_and_verdict(self) -> None:
        closed = closed_triple(self.PENDING, trained(WITH_BN, 1), "ok: 0.55")
        assert (closed["source"], closed["move"], closed["followed"]) == ("menu", "batchnorm", True)
        old = closed_triple(Pending(problem="p", suggestion="s"), trained(WITH_BN, 1), "ok")
        assert old == Triple(iteration=1, problem="p", suggestion="s", outcome="ok")

    def test_a_merged_window_line_keeps_the_newer_verdict(self) -> None:
        first = closed_triple(self.PENDING, trained(NET, 1), "ok")
        second = closed_triple(self.PENDING, trained(WITH_BN, 2), "ok")
        (merged,) = push_triples([first], [second], keep=5)
        assert merged["count"] == 2 and merged["followed"] is True and merged["iteration"] == 2


# -- the loop, driven by an Improver stuck on one generic sentence ------------------------------


def fence(code: str) -> str:
    return f"Here is the network:\n```python\n{code}```\n"


def run_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> dict[str, RecordingChat]:
    """Three iterations: NET, then the net with the BatchNorm added, then that net renamed;
    the Improver says STUCK_ADVICE every time."""
    chats = {
        "generator": RecordingChat(
            responses=[fence(c) for c in (NET, WITH_BN, RENAMED)], prompts=[]
        ),
        "improver": RecordingChat(responses=[STUCK_ADVICE], prompts=[]),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, s: chats[role])
    use_evaluator(monkeypatch, ScriptedEvaluator())
    run_to_end_state(tmp_path, iterations=3, **settings)
    return chats


def test_the_loop_replaces_the_repeated_sentence_with_untried_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = run_stuck(tmp_path, monkeypatch, concrete_advice=True)
    generator = chats["generator"].prompts
    assert len(generator) == 3 and len(chats["improver"].prompts) == 2
    assert "## Moves for this network" in chats["improver"].prompts[0]
    # the stuck sentence never reaches the Generator; each prompt gets a different move
    assert all(STUCK not in prompt for prompt in generator)
    assert (
        "Apply this change: Put nn.BatchNorm2d(16) right after the first convolution"
        in generator[1]
    )
    assert "Apply this change: Add one more convolution block" in generator[2]
    advice_rows = RunArchive(tmp_path / "t").advice()
    assert [(r["followed"], r["next_source"], r["next_move"]) for r in advice_rows.values()] == [
        (None, "menu", "batchnorm"),
        (1, "menu", "conv_block"),  # iteration 1 added the BatchNorm
        (0, None, None),  # iteration 2 only renamed a layer; no advice after the last
    ]
    q = run_quality(tmp_path / "t")
    assert (q["advice_checked"], q["advice_followed_rate"], q["advice_repeats_replaced"]) == (
        2,
        0.5,
        2,
    )
    told = story_text(story(tmp_path / "t", 1))  # `python -m agent show t 1`
    assert "followed: yes" in told and "source: the host's menu move conv_block" in told


def test_switched_off_the_repeated_sentence_goes_through_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chats = run_stuck(tmp_path, monkeypatch, concrete_advice=False)
    generator = chats["generator"].prompts
    assert all("## Moves" not in prompt for prompt in chats["improver"].prompts)
    assert (
        f"Apply this change: {STUCK}" in generator[1]
        and f"Apply this change: {STUCK}" in generator[2]
    )
    q = run_quality(tmp_path / "t")
    # nothing in the sentence can be checked, and nothing was replaced
    assert (q["advice_checked"], q["advice_followed_rate"], q["advice_repeats_replaced"]) == (
        0,
        None,
        0,
    )


# -- the numbers, and archives from before the advice table --------------------------------------


def record(archive: RunArchive, iteration: int, closed: Triple | None, source: str) -> None:
    archive.record_candidate(
        iteration, "x", dict(new_result("ok", "m", f"h{iteration}", val_accuracy=0.5))
    )
    given = Pending(problem="p", suggestion="s", source=source)
    archive.record_improvement(
        iteration, dict(closed) if closed else None, "p", "s", 5, dict(given)
    )


def test_the_quality_numbers_count_verdicts_and_replacements(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "r")
    verdicts: list[bool | None] = [None, True, False, True, None]
    for i, verdict in enumerate(verdicts):
        closed = triple("s")
        if i:
            closed["followed"] = verdict
        record(archive, i, closed if i else None, "menu" if i % 2 else "improver")
    q = run_quality(tmp_path / "r")
    assert {"advice_checked", "advice_followed_rate", "advice_repeats_replaced"} <= set(NUMBERS)
    assert q["advice_checked"] == 3 and q["advice_followed_rate"] == pytest.approx(2 / 3)
    assert q["advice_repeats_replaced"] == 2
    assert json.loads(archive.rows()[1]["closed_triple"])["followed"] is True


def test_an_archive_from_before_the_advice_table_still_reads(tmp_path: Path) -> None:
    archive = RunArchive(tmp_path / "old")
    archive.record_candidate(0, "x", dict(new_result("ok", "m", "h", val_accuracy=0.5)))
    archive.record_improvement(0, None, "p", "s", 5)  # as every caller before the advice field
    with sqlite3.connect(tmp_path / "old" / "archive.sqlite") as db:
        db.execute("DROP TABLE advice")
    q = run_quality(tmp_path / "old")
    assert (q["advice_checked"], q["advice_followed_rate"], q["advice_repeats_replaced"]) == (
        0,
        None,
        0,
    )
    assert q["trained"] == 1 and RunArchive(tmp_path / "old").advice() == {}
    # a window from before these fields merges and closes as it did
    old = [Triple(iteration=0, problem="p", suggestion="s", outcome="o")]
    assert push_triples(old, old, keep=5) == [{**old[0], "count": 2}]


def test_the_setting_has_a_flag_and_an_ablation_variant() -> None:
    from agent.results.ablate import run_argv
    from agent.run import build_parser

    assert Settings().concrete_advice is False  # until the benchmark measures it
    on = build_parser().parse_args(run_argv("x", "concrete_advice", 0, 3, []))
    full = build_parser().parse_args(run_argv("x", "full", 0, 3, []))
    assert on.concrete_advice is True and full.concrete_advice is False
    assert on.novelty and on.improver and on.memory  # only this switch differs
