"""The reacting fake model (tests/fakes/small_model.py) does what its doc says, and its table of
the recorded nets' sizes is what torch counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from agent.replies.code import extract_code
from tests.fakes import MNIST5K_REPLIES
from tests.fakes.repairs import CHANNELS_WRONG, RIGHT_LINE, WRONG_LINE
from tests.fakes.small_model import GENERATOR, IMPROVER, MNIST5K_SIZES, SmallModel

SCRIPT = json.loads(MNIST5K_REPLIES.read_text())
MODULE = extract_code(CHANNELS_WRONG) or ""


def body(model: str, prompt: str, seed: int) -> dict[str, Any]:
    return {"model": model, "seed": seed, "messages": [{"role": "user", "content": prompt}]}


def parameters(reply: str) -> int | None:
    code = extract_code(reply)
    if code is None or "class Net(" not in code:
        return None
    scope: dict[str, Any] = {}
    try:
        exec(compile(code, "reply.py", "exec"), scope)  # our own recorded replies
        net = scope["Net"]()
        net(torch.zeros(2, 1, 28, 28))
    except Exception:
        return None
    return int(sum(p.numel() for p in net.parameters()))


def test_the_size_table_is_what_torch_counts() -> None:
    counted = {i: parameters(reply) for i, reply in enumerate(SCRIPT[GENERATOR])}
    assert counted == MNIST5K_SIZES


def test_shown_a_network_it_copies_it_most_of_the_time_and_is_deterministic() -> None:
    prompt = "## Best network so far\n```python\nBEST = 1\n```\nImprove it."
    model = SmallModel.from_file(MNIST5K_REPLIES, echo=0.0)
    replies = [model(body(GENERATOR, prompt, seed)) for seed in range(40)]
    copies = [r for r in replies if "```python\nBEST = 1\n```" in r]
    assert 16 <= len(copies) <= 32  # copy=0.6 of 40
    again = SmallModel.from_file(MNIST5K_REPLIES, echo=0.0)
    assert [again(body(GENERATOR, prompt, seed)) for seed in range(40)] == replies


def test_it_follows_a_pointed_repair_only_some_of_the_time() -> None:
    prompt = (
        f"The error is at line 10.\n>> 10 | {WRONG_LINE}\n\nThe whole module:\n"
        f"```python\n{MODULE}```\nCorrect the marked line."
    )
    model = SmallModel(["x"], ["y"], fixes={WRONG_LINE: RIGHT_LINE}, echo=0.0)
    replies = [extract_code(model(body(GENERATOR, prompt, seed))) or "" for seed in range(40)]
    followed = [r for r in replies if RIGHT_LINE in r]
    assert 3 <= len(followed) <= 20  # follow=0.25 of 40
    assert all(r == MODULE for r in replies if r not in followed)  # else: the module, unchanged
    unpointed = prompt.replace(f">> 10 | {WRONG_LINE}\n", "")
    assert all(
        extract_code(model(body(GENERATOR, unpointed, seed))) == MODULE for seed in range(40)
    )


def test_told_a_limit_it_mostly_skips_the_nets_it_knows_are_too_big() -> None:
    def sizes_written(prompt: str) -> list[int | None]:
        model = SmallModel.from_file(MNIST5K_REPLIES, sizes=MNIST5K_SIZES, echo=0.0)
        out = [model(body(GENERATOR, prompt, seed)) for seed in range(44)]
        return [MNIST5K_SIZES[SCRIPT[GENERATOR].index(r)] for r in out]

    blind = sizes_written("Write a network.")
    told = sizes_written("Write a network. It must have at most 50,000 parameters.")
    over = [s for s in blind if s and s > 50_000]
    assert len(over) == 16  # 4 of every 11 recorded nets
    assert 0 < len([s for s in told if s and s > 50_000]) <= len(over) // 2


def test_the_improver_repeats_its_advice_and_sometimes_echoes() -> None:
    model = SmallModel.from_file(MNIST5K_REPLIES)
    replies = [model(body(IMPROVER, "## Task\nFix it.", seed)) for seed in range(40)]
    draws = [what for _, what in model.draws]
    assert draws.count("repeated") >= 10 and draws.count("echo") >= 1
    last_advice = None
    for reply, what in zip(replies, draws, strict=True):
        if what == "repeated":  # word for word what it advised last
            assert reply == last_advice
        elif what.startswith("advised"):
            last_advice = reply
        else:  # the prompt's text: no advice in it
            assert what == "echo" and reply == "## Task\nFix it."


def test_an_unknown_model_is_refused() -> None:
    from tests.fakes.openai_server import UnknownModel

    with pytest.raises(UnknownModel):
        SmallModel(["x"], ["y"])(body("other", "hi", 0))
