"""`train_candidate`: one candidate network in, one small typed result out.

The only door to the sandbox. Dataset, budget and backend come from the `NASLOOP_*` settings (or
an `Evaluator` handed to `make_train_candidate`), never from the caller's arguments, so an LLM that
calls the tool can only choose the code.

    python -m tools.train_candidate [FILE]   # evaluate FILE (default: the bundled reference net)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TypedDict

from langchain_core.tools import BaseTool, tool

from sandbox.backends.base import BackendUnavailable
from sandbox.data import DatasetUnavailable, UnknownDataset
from sandbox.evaluate import Evaluator, evaluator_from_settings
from sandbox.executors import CandidateEvaluator, LocalExecutor, make_executor
from sandbox.ray_executor import RayExecutor
from sandbox.result import EvalResult
from sandbox.settings import SandboxSettings, SettingsError, bad_input, load_settings

REFERENCE_NET = Path(__file__).with_name("reference_net.py")
DESCRIPTION = (
    "Train one candidate network for one epoch in the sandbox and report the outcome. `code` is a "
    "complete Python module defining `class Net(nn.Module)` (its constructor may take "
    "`num_classes`). Returns status ('ok' or 'error'), kind (the failure class: syntax, no_net, "
    "import, shape, oom, timeout, nan, runtime, killed, over_limit), message, val_accuracy, "
    "params, flops, train_seconds and code_hash."
)

_evaluators: dict[str, Evaluator] = {}
_executors: dict[str, LocalExecutor | RayExecutor] = {}
_tools: dict[str, BaseTool] = {}


class TaskInfo(TypedDict):
    """What the Generator must know about the data: never assume 3x32x32 or 10 classes."""

    dataset: str
    input_shape: list[int]  # [C, H, W]
    num_classes: int
    n_train: int  # training images a candidate sees (NASLOOP_TRAIN_LIMIT when set)


def _sandbox_key(settings: SandboxSettings) -> str:
    return settings.model_dump_json(include=set(SandboxSettings.model_fields))


def evaluator_for(settings: SandboxSettings) -> Evaluator:
    """One evaluator per distinct sandbox settings, built on first use (dataset prepared once).

    Subclasses of SandboxSettings (the search's settings) share the evaluator of their sandbox
    part: changing an LLM setting does not prepare the dataset again.
    """
    key = _sandbox_key(settings)
    if key not in _evaluators:
        _evaluators[key] = evaluator_from_settings(settings)
    return _evaluators[key]


def task_for(settings: SandboxSettings) -> TaskInfo:
    """The task these settings train on (prepares the dataset on first use)."""
    dataset = evaluator_for(settings).dataset
    return TaskInfo(
        dataset=dataset.name,
        input_shape=list(dataset.input_shape),
        num_classes=dataset.num_classes,
        n_train=settings.train_limit or dataset.n_train,
    )


def executor_for(settings: SandboxSettings) -> LocalExecutor | RayExecutor:
    """Where these settings' candidates train (NASLOOP_EXECUTOR: local, or a Ray cluster), in
    front of their evaluator; one per distinct settings, so a Ray connection is made once."""
    key = _sandbox_key(settings)
    if key not in _executors:
        _executors[key] = make_executor(settings, evaluator_for(settings))
    return _executors[key]


def train_candidate_for(settings: SandboxSettings) -> BaseTool:
    """The `train_candidate` tool for these settings, built once, bound to `executor_for`."""
    key = _sandbox_key(settings)
    if key not in _tools:
        _tools[key] = make_train_candidate(executor_for(settings))
    return _tools[key]


def close_all() -> None:
    """Close every evaluator built here (a warm worker's container with it) and forget them,
    with the executors and tools in front of them."""
    for evaluator in _evaluators.values():
        close = getattr(evaluator.backend, "close", None)
        if close:
            close()
    _evaluators.clear()
    _executors.clear()
    _tools.clear()


def default_evaluator() -> Evaluator:
    return evaluator_for(load_settings())


def make_train_candidate(evaluator: CandidateEvaluator | None = None) -> BaseTool:
    """The tool bound to one evaluator (or, by default, to the current `NASLOOP_*` settings)."""

    @tool("train_candidate", description=DESCRIPTION)
    def train_candidate(code: str) -> EvalResult:
        return (evaluator or default_evaluator()).evaluate(code)

    return train_candidate


train_candidate = make_train_candidate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate one candidate file in the sandbox.")
    parser.add_argument("file", nargs="?", type=Path, default=REFERENCE_NET)
    args = parser.parse_args(argv)
    try:
        code = args.file.read_text(encoding="utf-8")
        result = train_candidate.invoke({"code": code})
    except (OSError, SettingsError, UnknownDataset, DatasetUnavailable, BackendUnavailable) as exc:
        return bad_input(exc)
    print(json.dumps(result, indent=2))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
