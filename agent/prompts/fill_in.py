"""The Generator's fill-in prompt (`--fill-in`, in either prompt style): a fixed skeleton whose one
blank is the list of layers in `self.features`; the reply is those layers and nothing else
(agent/replies/fill_in.py reads them and splices them in).

Why: shown a whole network, a 0.5B code model wrote it back verbatim, and every new network was
the same MLP (issue 25). Here there is no whole network to copy and no head to get wrong: the
host writes the module, the model writes the part that decides the architecture. The network to
build on (the best, or the tournament's draw) is shown as its layers alone, then what the loop
learned, then the contract, which holds no blank line (a re-ask's note goes in before it).
"""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agent.prompts.common import (
    learned_sections,
    outcome_text,
    same_candidate,
    shape,
)
from agent.replies.fill_in import feature_layers, fill_in_module
from agent.state import Candidate, TaskInfo, Triple

SLOT = "# your layers here"
_SYSTEM = (
    "You write the feature layers of small PyTorch image classifiers. You reply with one "
    "```python block that holds only torch.nn layers, and nothing else."
)


def example_layers(channels: int) -> list[str]:
    return [
        f"nn.Conv2d({channels}, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()",
        "nn.MaxPool2d(2)",
    ]


def layers_block(layers: list[str]) -> str:
    return "```python\n" + "".join(f"{layer},\n" for layer in layers) + "```"


def fill_in_messages(
    task: TaskInfo,
    *,
    best: Candidate | None,
    last: Candidate | None,
    suggestion: str,
    window: list[Triple],
    constraints: str = "",
    drawn: bool = False,
) -> list[BaseMessage]:
    """Task, the skeleton with its blank, the layers to build on (or an example), what the loop
    learned, then the contract. `best` is the network to build on; `drawn`: the tournament drew
    it, so it is one of the best, not necessarily the best."""
    _, bchw = shape(task)
    classes = int(task.get("num_classes") or 10)
    channels = int((task.get("input_shape") or [3])[0])
    skeleton = fill_in_module([SLOT], classes).rstrip("\n")
    sections = [
        f"Task: classify {task.get('dataset', 'the')} images into {classes} classes. "
        f"The input x has shape {bchw}. Our program trains the network for one epoch.",
        "The network is fixed except for the layers of `self.features`, which you write:\n"
        f"```python\n{skeleton}\n```",
    ]
    layers = feature_layers(best.get("code")) if best else None
    if best and layers:
        title = "one of the best networks so far" if drawn else "the best network so far"
        outcome = outcome_text(best.get("result") or {})
        sections.append(f"The layers of {title} ({outcome}):\n{layers_block(layers)}")
    else:
        example = layers_block(example_layers(channels))
        sections.append(f"For example, layers like these:\n{example}")
    if last and not (best and same_candidate(last, best)):
        failed = (last.get("result") or {}).get("status") != "ok"
        mine = feature_layers(last.get("code")) if failed else None
        shown = f"\n{layers_block(mine)}" if mine else ""
        sections.append(f"Last attempt: {outcome_text(last.get('result') or {})}{shown}")
    sections += learned_sections(suggestion, window, constraints)
    sections.append(
        "Reply with one ```python block that holds only the layers that go inside "
        f"`nn.Sequential(` above, separated by commas. They take x of shape {bchw} and must "
        "give a 4-D feature map (B, channels, height, width): no nn.Flatten, no nn.Linear, the "
        "head pools and classifies. No class, no imports, no explanation."
    )
    return [SystemMessage(content=_SYSTEM), HumanMessage(content="\n\n".join(sections))]
