"""The fill-in prompt (`--fill-in`): the Generator writes only the layers of `self.features`, the
host splices them into a fixed skeleton. How a reply is read (layers in their usual shapes, a whole
module kept as one, prose left alone); the spliced module through the real lint, the real dry run
(no dead layers, a fingerprint) and the novelty check by architecture; the prompt; and the loop
with a small model that writes the same MLP whenever it is asked for a whole module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import agent.nodes as nodes
from agent.archive.candidates import RunArchive
from agent.check.cascade import SandboxChecks
from agent.check.static import lint
from agent.check.step import Iteration, check_and_train
from agent.graph import build_graph
from agent.prompts.fill_in import SLOT, fill_in_messages
from agent.prompts.short import short_generator_messages, with_note
from agent.replies.edits import Reading, code_from_reply
from agent.replies.fill_in import HEAD, feature_layers, read_reply, reply_layers, without_head
from agent.replies.layers import measure, read_layers
from agent.settings import Settings
from agent.state import Candidate, TaskInfo
from sandbox.code import code_hash
from sandbox.data import PreparedDataset
from sandbox.result import EvalResult, new_result
from tests.fakes.small_model import GENERATOR, IMPROVER, ResponderChat, SmallModel
from tests.helpers.graph import ScriptedEvaluator, improver_reply, use_evaluator
from tests.helpers.networks import real_evaluator

TASK = TaskInfo(dataset="mnist5k", input_shape=[1, 28, 28], num_classes=10, n_train=600)
LAYERS = [
    "nn.Conv2d(1, 16, 3, padding=1)",
    "nn.BatchNorm2d(16)",
    "nn.ReLU()",
    "nn.MaxPool2d(2)",
]
# the same layers as a small model writes them: in a fence, several to a line, trailing commas
REPLY = (
    "Here are the layers:\n```python\nnn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), "
    "nn.ReLU(),\nnn.MaxPool2d(2),\n```\nThese extract features."
)
# The one module a small model writes whenever it is asked for a whole one (issue 25's MLP)
MLP = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x):
        return self.body(x)
"""


# -- reading a reply -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        REPLY,
        "```\nnn.Conv2d(1, 16, 3, padding=1)\nnn.BatchNorm2d(16)\nnn.ReLU()\nnn.MaxPool2d(2)\n```",
        "```python\nimport torch.nn as nn\n\nnn.Sequential(\n    nn.Conv2d(1, 16, 3, padding=1),\n"
        "    nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)\n)\n```",
        "        self.features = nn.Sequential(\n            nn.Conv2d(1, 16, 3, padding=1),\n"
        "            nn.BatchNorm2d(16),  # normalise\n            nn.ReLU(),\n"
        "            nn.MaxPool2d(2),\n        )",
        "```python\nnn.Linear(3, 4),\n```\nOr better:\n```python\n" + ",\n".join(LAYERS) + "\n```",
    ],
    ids=["commas", "lines", "sequential", "indented-assignment", "last-block"],
)
def test_the_layers_of_a_reply_in_the_shapes_small_models_write(reply: str) -> None:
    assert reply_layers(reply) == LAYERS


@pytest.mark.parametrize(
    "reply",
    [
        "Add more layers to the network.",
        "```python\nnn.Conv2d(1, 16, 3),\nx = 3\n```",  # a statement that is no layer
        "```python\nnn.ReLU,\n```",  # a class, not a layer
        "```python\nclass Model(nn.Module):\n    pass\n```",
        "```python\n" + "nn.ReLU(),\n" * 65 + "```",  # more than MAX_LAYERS
    ],
)
def test_no_layers_in_prose_statements_classes_or_too_many(reply: str) -> None:
    assert reply_layers(reply) is None


def test_layers_become_the_skeleton_and_a_whole_module_stays_itself() -> None:
    read = read_reply(REPLY, None, "full", TASK)
    assert read.error is None and read.code is not None
    assert feature_layers(read.code) == LAYERS and f"self.head = {HEAD}" in read.code
    assert "def __init__(self, num_classes=10)" in read.code
    whole = f"```python\n{MLP}```"
    assert read_reply(whole, None, "full", TASK) == code_from_reply(whole, None, "full")
    # switched off, the same reply is read as before: a fenced block that defines no Net
    assert read_reply(REPLY, None, "full", None).code != read.code
    assert read_reply("No code here.", None, "full", TASK) == Reading(None, None)
    cifar = TaskInfo(dataset="cifar10", input_shape=[3, 32, 32], num_classes=100, n_train=9)
    assert "num_classes=100" in (read_reply(REPLY, None, "full", cifar).code or "")


def test_the_spliced_module_passes_lint_the_dry_run_and_the_novelty_check(
    mnist: PreparedDataset,
) -> None:
    code = read_reply(REPLY, None, "full", TASK).code
    assert code is not None and lint(code)["kind"] is None
    # the same network in other words: another program, the same architecture
    other = read_reply(
        REPLY.replace("3, padding=1", "kernel_size=3, padding=1"), None, "full", TASK
    )
    assert other.code is not None and code_hash(other.code) != code_hash(code)
    checks = SandboxChecks(real_evaluator(mnist), TASK, dead_layers=True)
    trained: list[str] = []

    def train(program: str) -> dict[str, Any]:
        trained.append(program)
        return dict(new_result("ok", "trained", code_hash(program), val_accuracy=0.5))

    first = Iteration(seen={}, train=train, record=lambda a: None, checks=checks, iteration=0)
    done = check_and_train(code, first)
    assert done.result["kind"] == "ok" and done.fingerprint  # no dead layers, a fingerprint
    asked: list[str] = []

    def reask(n: int, note: str) -> Reading:
        asked.append(note)
        return Reading(None, None)

    second = Iteration(
        seen=first.seen, train=train, record=lambda a: None, reask=reask, checks=checks, iteration=1
    )
    check_and_train(other.code, second)
    assert trained == [code] and asked and "computed the same network as attempt 0" in asked[0]


# -- the prompt ------------------------------------------------------------------------------------


def trained_candidate(code: str, iteration: int = 0, kind: str = "ok") -> Candidate:
    result = new_result(kind, "m", "h", val_accuracy=0.6 if kind == "ok" else None)
    return Candidate(iteration=iteration, code=code, result=result)


def test_the_prompt_shows_the_skeleton_the_layers_to_build_on_and_asks_for_layers_last() -> None:
    best = trained_candidate(read_reply(REPLY, None, "full", TASK).code or "")
    messages = fill_in_messages(TASK, best=best, last=best, suggestion="Add dropout.", window=[])
    body = str(messages[1].content)
    assert f"self.features = nn.Sequential(\n            {SLOT}\n        )" in body
    assert "The layers of the best network so far (ok: val accuracy 0.6000" in body
    assert "```python\nnn.Conv2d(1, 16, 3, padding=1),\nnn.BatchNorm2d(16),\n" in body
    assert "Apply this change: Add dropout." in body and "class Net" not in body.split("\n\n")[-1]
    assert body.split("\n\n")[-1].startswith("Reply with one ```python block that holds only")
    noted = str(with_note(messages, "NOTE")[1].content).split("\n\n")
    assert noted[-2] == "NOTE" and noted[-1].startswith("Reply with one")
    drawn = fill_in_messages(TASK, best=best, last=None, suggestion="", window=[], drawn=True)
    assert "The layers of one of the best networks so far" in str(drawn[1].content)
    # nothing trained yet, or a best with no `features` to show: an example stem
    for shown in (None, trained_candidate(MLP)):
        body = str(
            fill_in_messages(TASK, best=shown, last=None, suggestion="", window=[])[1].content
        )
        assert "For example, layers like these:\n```python\nnn.Conv2d(1, 32, 3, padding=1)" in body
    # a failed last attempt shows its own layers, the ones to fix
    failed = trained_candidate(
        read_reply("```\nnn.Linear(3, 4),\n```", None, "full", TASK).code or "", 1, "shape"
    )
    body = str(fill_in_messages(TASK, best=best, last=failed, suggestion="", window=[])[1].content)
    assert "Last attempt: failed (shape): m\n```python\nnn.Linear(3, 4),\n```" in body


def test_fill_in_asks_for_layers_in_either_style_and_no_edit_blocks(tmp_path: Path) -> None:
    from agent.state import State
    from agent.steer.request import generator_prompt

    best = trained_candidate(read_reply(REPLY, None, "full", TASK).code or "")
    state = State(run_id="r", task=TASK, iteration=1, window=[], round=[], best=best, last=best)
    archive = RunArchive(tmp_path / "r")
    for style in ("short", "paper"):
        settings = Settings(prompt_style=style, edit_mode="diff", fill_in=True)
        messages, base = generator_prompt(state, settings, archive)
        body = str(messages[1].content)
        assert base is None and "SEARCH" not in body and "only the layers" in body
    messages, base = generator_prompt(state, Settings(edit_mode="diff"), archive)
    assert base == best["code"] and "SEARCH" in str(messages[1].content)


# -- the small model -------------------------------------------------------------------------------


def ask(model: SmallModel, prompt: str, seed: int = 0) -> str:
    return model(
        {"model": GENERATOR, "seed": seed, "messages": [{"role": "user", "content": prompt}]}
    )


def test_the_small_model_writes_its_mlp_for_a_module_and_continues_the_layers_it_is_shown() -> None:
    model = SmallModel([f"```python\n{MLP}```"], [improver_reply(0)], copy=0.0, echo=0.0)
    full = short_generator_messages(TASK, best=None, last=None, suggestion="", window=[])
    assert ask(model, str(full[1].content)) == f"```python\n{MLP}```"  # its habit
    fill = fill_in_messages(TASK, best=None, last=None, suggestion="", window=[])
    layers = reply_layers(ask(model, str(fill[1].content)))
    assert layers is not None and measure(read_layers("\n".join(layers)), "conv") == 2
    # shown layers without a convolution, it writes none: it continues what it sees
    flat = trained_candidate(
        read_reply("```\nnn.Flatten(),\nnn.Linear(784, 64),\n```", None, "full", TASK).code or ""
    )
    fill = fill_in_messages(TASK, best=flat, last=None, suggestion="", window=[])
    written = reply_layers(ask(model, str(fill[1].content))) or []
    assert written == ["nn.Flatten()", "nn.Linear(784, 64)", "nn.Linear(784, 64)"]


class LayerEvaluator(ScriptedEvaluator):
    """Trains any program: the more convolutions, the better (up to a point)."""

    def evaluate(self, code: str) -> EvalResult:
        convs = measure(read_layers(code), "conv") or 0
        return new_result(
            "ok", "trained", code_hash(code), val_accuracy=min(0.3 + 0.1 * convs, 0.9)
        )


def search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: float, **settings: Any
) -> list[dict[str, Any]]:
    """Eight iterations with a small model whose one module is the MLP; every candidate."""
    reply = f"Here is the network.\n```python\n{MLP}```"
    model = SmallModel([reply], [improver_reply(i) for i in range(8)], copy=copy)
    chats = {
        "generator": ResponderChat(responder=model, model=GENERATOR),
        "improver": ResponderChat(responder=model, model=IMPROVER),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, s: chats[role])
    use_evaluator(monkeypatch, LayerEvaluator())
    graph = build_graph(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 500}
    graph.invoke(
        {"run_id": "t"}, config, context=Settings(runs_dir=tmp_path, iterations=8, **settings)
    )
    archive = RunArchive(tmp_path / "t")
    return [{**row, "code": archive.code_at(row["iteration"])} for row in archive.rows()]


def test_the_same_small_model_writes_convolutions_only_when_asked_for_the_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a model that never copies what it is shown: asked for a module, it writes its MLP, every time
    whole = search(tmp_path / "whole", monkeypatch, copy=0.0)
    trained = [r for r in whole if r["status"] == "ok"]
    assert len(trained) == 1 and measure(read_layers(trained[0]["code"]), "conv") == 0
    assert {r["kind"] for r in whole[1:]} <= {"duplicate", "no_code"}  # the MLP again, or prose
    # asked for the layers, it continues the ones it is shown: convolutions, a new net each time
    for copy in (0.0, 0.6):  # and when it copies them back, a re-ask gets it past the copy
        filled = search(tmp_path / f"filled-{copy}", monkeypatch, copy=copy, fill_in=True)
        trained = [r for r in filled if r["status"] == "ok"]
        assert len(trained) >= 3 and all(feature_layers(r["code"]) for r in trained)
        assert all(measure(read_layers(r["code"]), "conv") for r in trained)
        assert len({r["code_hash"] for r in trained}) == len(trained)


def test_the_setting_has_a_flag_and_an_ablation_variant() -> None:
    from agent.results.ablate import run_argv
    from agent.run import build_parser
    from bench.search_quality import DEFAULT_VARIANTS

    assert Settings().fill_in is False
    on = build_parser().parse_args(run_argv("x", "fill_in", 0, 3, []))
    full = build_parser().parse_args(run_argv("x", "full", 0, 3, []))
    assert on.fill_in is True and full.fill_in is False
    assert on.parent == "best" and not on.copy_heat and on.novelty  # only this part changed
    assert "fill_in" in DEFAULT_VARIANTS
    assert json.loads(Settings(fill_in=True).model_dump_json())["fill_in"] is True


def test_a_head_the_model_wrote_anyway_is_cut_off() -> None:
    """The 0.5B coder ended its layers with a flatten and a classifier in 3 of its first 4
    fill-in replies (bench run probe-0.5b); the skeleton's head then pooled a (2, 10) matrix into
    one row and every one failed as `shape`. From the first Flatten or Linear on, the layers go."""
    headed = "```python\n" + "".join(f"{layer},\n" for layer in LAYERS)
    headed += "nn.Flatten(),\nnn.LazyLinear(10),\n```"
    read = read_reply(headed, None, "full", TASK)
    assert read.code is not None and feature_layers(read.code) == LAYERS
    assert without_head(["nn.Flatten()", "nn.Linear(784, 10)"]) == [
        "nn.Flatten()",
        "nn.Linear(784, 10)",
    ]  # nothing before the head: kept, for the dry run to name the problem
    assert without_head(LAYERS) == LAYERS
