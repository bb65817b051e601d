"""A fake chat model that reacts to what it is asked, the way the small models we measured do.

The scripted server (`ScriptedResponder`) answers in a fixed order whatever it is sent: a far
better model than any small one (6 of its 11 Generator replies train, 10 of 10 pieces of advice
are readable and new), and blind to the prompt, so a test driven by it cannot tell whether the
prompt mattered. `SmallModel` plays the same recorded replies, but reads the request first:

- shown a network (the best so far, in a ```python block), it copies it back most of the time
  (`copy`), as SmolLM2 and Qwen2.5-0.5B did: the novelty check's duplicates;
- asked to repair a module whose failing line is marked (`>> N | ...`, agent/check/locate.py), it
  corrects that line only some of the time (`follow`, when the line is one of `fixes`), and
  otherwise sends the module back unchanged;
- told a parameter limit ("at most N parameters"), it skips the recorded nets it knows to be
  larger (`heed` of the time; `sizes` says how large each recorded reply is);
- asked for only the layers of a `nn.Sequential(...)` (the fill-in request), it continues from
  the layers it was shown last, one per line in a ```python block: copied (`copy`), else with
  one more block of the same pattern (after a convolution, the next one with twice its
  channels; after anything else, that line again). With no layer lines shown it falls back on
  its recorded module. It never writes a kind of layer it was not shown;
- as the Improver, it repeats its last advice word for word (`repeat`); given only
  `STUCK_ADVICE`, it answers as issue 25's 0.5B Improver did: one sentence that names no layer,
  after every result;
- now and then it echoes the prompt back instead of answering (`echo`): prose without code from
  the Generator, unreadable advice from the Improver.

Every choice is a draw from a generator seeded by the request's `seed` (nasloop sends one per
call: run seed + iteration, + 1000 per re-ask or fix) and the model's call count, so a run is
the same every time, and a test can ask `SmallModel.draws` which way each call went.

Use it as an OpenAI server's responder (tests/fakes/openai_server.py), or in process through
`ResponderChat` (a LangChain chat model), e.g. for the graph's unit tests.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import SimpleChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tests.fakes.openai_server import UnknownModel

GENERATOR, IMPROVER = "fake-generator", "fake-improver"
MARKED = re.compile(r"^>>\s*(\d+) \| (.*)$", re.MULTILINE)
SHOWN = re.compile(r"```python\n(.*?)```", re.DOTALL)
LIMIT = re.compile(r"at most ([\d,]+) parameters")
REPAIR = re.compile(r"Correct the (marked line|error)")  # agent/prompts/fix.py's request
FILL_IN = re.compile(r"only the layers")  # agent/prompts/fill_in.py's request
CONV = re.compile(r"Conv2d\((\d+), (\d+)")

# Parameters of each recorded mnist5k Generator reply (tests/fakes/replies/mnist5k.json) as
# built by torch, None where it does not build; tests/unit/test_small_model.py keeps it true.
MNIST5K_SIZES: dict[int, int | None] = {
    0: 105_866,
    1: None,  # a Linear sized for 32x32: fails in forward
    2: None,  # a syntax slip
    3: None,  # prose only
    4: None,  # a class named Model
    5: 20_538,
    6: 105_866,  # reply 0 with comments
    7: 30_874,
    8: 101_770,
    9: 63_346,
    10: 34_314,
}


# The kind of advice a 0.5B Improver gave after every result in issue 25's run (the suggestion
# begins as the issue quotes it): it names no layer, so no next program can be checked against it
STUCK_ADVICE = json.dumps(
    {
        "problem": "The model is not complex enough to learn the data.",
        "suggestion": "Add more layers or use a different architecture to improve the accuracy.",
    }
)


def last_user_text(body: Mapping[str, Any]) -> str:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    return content if isinstance(content, str) else ""


class SmallModel:
    """A responder (request body -> reply text) for the Generator and Improver models; see the
    module doc for what it does with what it is shown."""

    def __init__(
        self,
        generator: Sequence[str],
        improver: Sequence[str],
        *,
        sizes: Mapping[int, int | None] | None = None,
        fixes: Mapping[str, str] | None = None,
        copy: float = 0.6,
        follow: float = 0.25,
        heed: float = 0.75,
        repeat: float = 0.5,
        echo: float = 0.1,
        models: tuple[str, str] = (GENERATOR, IMPROVER),
    ) -> None:
        if not generator or not improver:
            raise ValueError("a small model needs at least one reply per role")
        self.generator, self.improver = list(generator), list(improver)
        self.sizes = dict(sizes or {})
        self.fixes = {k.strip(): v for k, v in (fixes or {}).items()}
        self.copy, self.follow, self.heed = copy, follow, heed
        self.repeat, self.echo = repeat, echo
        self.models = list(models)
        self.draws: list[tuple[str, str]] = []  # (model, what it did) per call, in order
        self._next = {models[0]: 0, models[1]: 0}  # the next recorded reply of each role
        self._calls = {models[0]: 0, models[1]: 0}
        self._advice: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SmallModel:
        """The recorded replies of a `{"fake-generator": [...], "fake-improver": [...]}` file."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data[GENERATOR], data[IMPROVER], **kwargs)

    def __call__(self, body: dict[str, Any]) -> str:
        model = str(body.get("model"))
        if model not in self._next:
            raise UnknownModel(f"The model `{model}` does not exist. Known: {self.models}")
        with self._lock:
            self._calls[model] += 1
            rng = random.Random(f"{model}:{body.get('seed')}:{self._calls[model]}")
            prompt = last_user_text(body)
            if model == self.models[0]:
                what, reply = self._write(prompt, rng)
            else:
                what, reply = self._advise(prompt, rng)
            self.draws.append((model, what))
            return reply

    # -- the Generator ---------------------------------------------------------------------------

    def _write(self, prompt: str, rng: random.Random) -> tuple[str, str]:
        if rng.random() < self.echo:
            return "echo", _prose_of(prompt)
        shown = SHOWN.search(prompt)
        marked = [text.strip() for _, text in MARKED.findall(prompt)]
        if shown and REPAIR.search(prompt):  # a repair request, pointed (marked) or not
            module = shown.group(1)
            wrong = next((line for line in marked if line in self.fixes), None)
            if wrong is not None and rng.random() < self.follow:
                fixed = "\n".join(
                    _refix(line, wrong, self.fixes[wrong]) for line in module.split("\n")
                )
                return "followed", f"Here is the corrected module.\n\n```python\n{fixed}```\n"
            return "unchanged", f"Here is the module.\n\n```python\n{module}```\n"
        if FILL_IN.search(prompt) and (filled := _fill(prompt, rng, self.copy)) is not None:
            return filled
        if shown and rng.random() < self.copy:
            return "copied", f"Here is the improved network.\n\n```python\n{shown.group(1)}```\n"
        limit = LIMIT.search(prompt)
        heeds = limit is not None and rng.random() < self.heed
        cap = int(limit.group(1).replace(",", "")) if limit else None
        skipped: list[int] = []
        for _ in range(len(self.generator)):
            index = self._next[self.models[0]]
            self._next[self.models[0]] = (index + 1) % len(self.generator)
            size = self.sizes.get(index)
            if heeds and cap is not None and size is not None and size > cap:
                skipped.append(index)  # it knows this one is too big for the limit
                continue
            what = f"wrote {index}" + (f" skipping {skipped}" if skipped else "")
            return what, self.generator[index]
        return "echo", _prose_of(prompt)  # every recorded net is over the limit

    # -- the Improver ----------------------------------------------------------------------------

    def _advise(self, prompt: str, rng: random.Random) -> tuple[str, str]:
        if rng.random() < self.echo:
            return "echo", _prose_of(prompt)
        if self._advice is not None and rng.random() < self.repeat:
            return "repeated", self._advice
        index = self._next[self.models[1]]
        self._next[self.models[1]] = (index + 1) % len(self.improver)
        self._advice = self.improver[index]
        return f"advised {index}", self._advice


def _fill(prompt: str, rng: random.Random, copy: float) -> tuple[str, str] | None:
    """The layers a fill-in request gets: those of the last python block that holds any (lines
    that start with `nn.`), copied or with one more block of their pattern; None when no block
    shows a layer line."""
    shown = [
        [line.strip().rstrip(",") for line in block.split("\n") if line.strip().startswith("nn.")]
        for block in SHOWN.findall(prompt)
    ]
    layers = next((lines for lines in reversed(shown) if lines), None)
    if layers is None:
        return None
    if rng.random() < copy:
        what = "copied layers"
    else:
        what = "extended layers"
        convs = [m for line in layers for m in CONV.finditer(line)]
        if convs:
            c = int(convs[-1].group(2))
            layers = [
                *layers,
                f"nn.Conv2d({c}, {2 * c}, 3, padding=1), nn.BatchNorm2d({2 * c}), nn.ReLU()",
                "nn.MaxPool2d(2)",
            ]
        else:
            layers = [*layers, layers[-1]]
    body = "".join(f"{line},\n" for line in layers)
    return what, f"Here are the layers.\n\n```python\n{body}```\n"


def _prose_of(prompt: str) -> str:
    """The prompt echoed back as a small model does when it loses the thread: its text, code
    blocks left out, cut at 600 characters."""
    return SHOWN.sub("", prompt).strip()[:600] or "Sure."


def _refix(line: str, wrong: str, right: str) -> str:
    return line.replace(wrong, right.strip()) if line.strip() == wrong else line


class ResponderChat(SimpleChatModel):
    """A LangChain chat model that answers through a responder, as the OpenAI server would: the
    messages become the request body's `messages`, the call's `seed` its `seed`."""

    responder: Any
    model: str
    seed: int | None = None
    temperature: float | None = None  # sent as the request's `temperature`, as a client does

    @property
    def _llm_type(self) -> str:
        return "responder-chat"

    def _call(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> str:
        roles = {"human": "user", "ai": "assistant", "system": "system"}
        body = {
            "model": self.model,
            "seed": kwargs.get("seed", self.seed),
            "temperature": self.temperature,
            "messages": [
                {"role": roles.get(m.type, m.type), "content": m.content} for m in messages
            ],
        }
        return str(self.responder(body))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self._call(messages, stop, run_manager, **kwargs)
        usage = {"input_tokens": 40, "output_tokens": 20, "total_tokens": 60}
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])
