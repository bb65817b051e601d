"""Parents other than the best (`--parent tournament`): the pool of the run's top networks with
different layers, the seeded tournament over it, and the loop showing the drawn network, under a
title that does not call it the best, with the Improver's advice and its moves about that same
network, recorded in the lineage.

The loop tests drive the real graph with a scripted Generator that writes a new conv net each
iteration (each names its own accuracy for the scripted evaluator) and an Improver that says one
generic sentence, which the menu replaces with a move naming a layer of the network it is about.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.archive.lineage import read_parents
from agent.settings import Settings
from agent.steer.parents import POOL, pool, tournament
from sandbox.result import new_result
from tests.fakes.small_model import STUCK_ADVICE
from tests.helpers.graph import RecordingChat, ScriptedEvaluator, run_to_end_state, use_evaluator

ACCURACIES = [0.50, 0.60, 0.55, 0.58, 0.40, 0.57, 0.45, 0.52, 0.44, 0.41]


def net(width: int, accuracy: float) -> str:
    """A conv net whose first convolution has `width` channels, and the result it trains to."""
    return f"""import torch.nn as nn
# result: ok {accuracy}


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, {width}, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.head(self.features(x))
"""


def width_of(text: str) -> int:
    found = re.search(r"nn\.Conv2d\(1, (\d+), 3, padding=1\)", text)
    assert found, text
    return int(found.group(1))


# -- the pool and the draw -----------------------------------------------------------------------


def archived(run_dir: Path, nets: list[tuple[str, float | None]]) -> RunArchive:
    archive = RunArchive(run_dir)
    for i, (code, accuracy) in enumerate(nets):
        kind = "ok" if accuracy is not None else "shape"
        result = new_result(kind, "m", f"h{i}", val_accuracy=accuracy)
        archive.record_candidate(i, code, dict(result))
    return archive


def test_the_pool_is_the_top_trained_networks_with_different_layers(tmp_path: Path) -> None:
    archive = archived(
        tmp_path / "r",
        [
            (net(8, 0.5), 0.50),
            (net(16, 0.6), 0.60),
            (net(16, 0.6).replace("self.head", "self.classifier"), 0.59),  # 16's layers again
            (net(24, 0.0), None),  # failed: never a parent
            (net(32, 0.55), 0.55),
            (net(40, 0.58), 0.58),
            (net(48, 0.30), 0.30),
        ],
    )
    assert [c["iteration"] for c in pool(archive, 7)] == [1, 5, 4, 0]  # best first, 2 and 6 out
    assert [c["iteration"] for c in pool(archive, 5)] == [1, 4, 0]  # only what came before
    first = pool(archive, 7)[0]
    assert width_of(first["code"]) == 16 and first["result"]["val_accuracy"] == 0.60
    assert pool(archive, 0) == [] and tournament([], 3) is None


def test_the_tournament_shows_other_networks_than_the_best_on_some_seeds_reproducibly(
    tmp_path: Path,
) -> None:
    archive = archived(tmp_path / "r", [(net(8 * (i + 1), a), a) for i, a in enumerate(ACCURACIES)])
    networks = pool(archive, len(ACCURACIES))
    assert len(networks) == POOL
    draws = [tournament(networks, seed) for seed in range(200)]
    assert draws == [tournament(networks, seed) for seed in range(200)]  # seeded: the same again
    picked = [networks.index(d) for d in draws if d is not None]
    counts = [picked.count(rank) for rank in range(POOL)]
    # the better of two drawn with replacement: 7, 5, 3 and 1 in 16 of the time
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0
    assert 0.3 < counts[0] / 200 < 0.6


# -- the loop --------------------------------------------------------------------------------------


def run_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> dict[str, Any]:
    nets = [f"Here it is:\n```python\n{net(8 * (i + 1), a)}```\n" for i, a in enumerate(ACCURACIES)]
    chats = {
        "generator": RecordingChat(responses=nets, prompts=[]),
        "improver": RecordingChat(responses=[STUCK_ADVICE], prompts=[]),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, s: chats[role])
    use_evaluator(monkeypatch, ScriptedEvaluator())
    final = run_to_end_state(tmp_path, iterations=len(ACCURACIES), **settings)
    return {"chats": chats, "final": final, "lineage": read_parents(tmp_path / "t")}


SHOWN = r"(?:Best network|One of the best networks) so far.*?```python\n(.*?)```"


def shown_widths(prompts: list[str]) -> list[int | None]:
    """The width of the network each Generator prompt shows to change (None: none shown)."""
    widths: list[int | None] = []
    for prompt in prompts:
        shown = re.search(SHOWN, prompt, re.S)
        widths.append(width_of(shown.group(1)) if shown else None)
    return widths


def best_widths() -> list[int | None]:
    """The width of the best network before each iteration."""
    out: list[int | None] = [None]
    best: tuple[float, int | None] = (0.0, None)
    for i, accuracy in enumerate(ACCURACIES[:-1]):
        best = max(best, (accuracy, 8 * (i + 1)), key=lambda b: b[0])
        out.append(best[1])
    return out


def test_the_loop_shows_the_drawn_network_and_the_advice_is_about_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_loop(tmp_path, monkeypatch, parent="tournament", concrete_advice=True)
    generator = ran["chats"]["generator"].prompts
    improver = ran["chats"]["improver"].prompts
    widths = shown_widths(generator)
    assert widths[0] is None and all(w is not None for w in widths[1:])
    # on some iterations the drawn network is not the best so far, and the prompt says so
    others = [i for i, (w, b) in enumerate(zip(widths, best_widths(), strict=True)) if w != b]
    assert others, widths
    assert all("One of the best networks so far" in p for p in generator[1:])
    assert not any("Best network so far" in p for p in generator)
    for i in range(1, len(generator)):
        parent = ran["lineage"][i]
        assert parent["why"] == "tournament" and 8 * (parent["parent"] + 1) == widths[i]
        # the Improver before iteration i reviewed the network iteration i was shown, and the
        # move it got (its generic sentence replaced) names that network's convolution
        assert f"## Network of attempt {parent['parent']}\n" in improver[i - 1]
        advice = re.search(r"Apply this change: (.*)", generator[i])
        assert advice and f"`nn.Conv2d(1, {widths[i]}, 3, padding=1)`" in advice.group(1)


def test_the_draws_are_the_same_in_a_second_run_and_the_best_without_the_tournament(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def widths(path: Path, **settings: Any) -> list[int | None]:
        prompts = run_loop(path, monkeypatch, **settings)["chats"]["generator"].prompts
        return shown_widths(prompts)

    first = widths(tmp_path / "a", parent="tournament")
    assert first == widths(tmp_path / "b", parent="tournament")
    assert first != widths(tmp_path / "c", parent="tournament", run_seed=5)
    best = run_loop(tmp_path / "d", monkeypatch)
    assert shown_widths(best["chats"]["generator"].prompts) == best_widths()
    assert {p["why"] for i, p in best["lineage"].items() if i} == {"best"}


@pytest.mark.parametrize("style", ["short", "paper"])
def test_a_drawn_network_is_never_called_the_best_in_either_style_nor_in_edit_requests(
    style: str,
) -> None:
    from agent.prompts import generator_messages
    from agent.prompts.edit import edit_request
    from agent.prompts.short import short_generator_messages
    from agent.state import Candidate, TaskInfo

    task = TaskInfo(dataset="mnist5k", input_shape=[1, 28, 28], num_classes=10, n_train=600)
    shown = Candidate(
        iteration=3, code=net(16, 0.6), result=new_result("ok", "m", "h", val_accuracy=0.6)
    )
    build = generator_messages if style == "paper" else short_generator_messages
    for mode in ("full", "diff"):
        settings = Settings(prompt_style=style, edit_mode=mode)
        messages = build(task, best=shown, last=None, suggestion="s", window=[], drawn=True)
        text = "\n".join(
            str(m.content) for m in edit_request(messages, shown["code"], settings, task, "s", True)
        )
        assert "One of the best networks so far" in text and not re.search(
            r"\bbest network\b", text, re.I
        )
        plain = build(task, best=shown, last=None, suggestion="s", window=[])
        assert "Best network so far" in str(plain[1].content)


def test_the_setting_has_a_flag_and_an_ablation_variant() -> None:
    from agent.results.ablate import run_argv
    from agent.run import build_parser
    from bench.search_quality import DEFAULT_VARIANTS

    assert Settings().parent == "best"
    assert Settings(parent="tournament").parent == "tournament"
    on = build_parser().parse_args(run_argv("x", "tournament", 0, 3, []))
    full = build_parser().parse_args(run_argv("x", "full", 0, 3, []))
    assert (on.parent, full.parent) == ("tournament", "best")
    assert not on.copy_heat and not on.fill_in and on.novelty  # only this part changed
    assert "tournament" in DEFAULT_VARIANTS
    assert json.loads(Settings(parent="tournament").model_dump_json())["parent"] == "tournament"
