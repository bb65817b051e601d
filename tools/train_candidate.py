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
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from langchain_core.tools import BaseTool, tool

from sandbox.backends.base import BackendUnavailable
from sandbox.backends.ray_executor import RayExecutor
from sandbox.data import DatasetUnavailable, UnknownDataset
from sandbox.evaluate import Evaluator, evaluator_from_settings
from sandbox.faults import InfrastructureFault
from sandbox.settings import SandboxSettings, SettingsError, load_settings

REFERENCE_NET = Path(__file__).with_name("reference_net.py")
DESCRIPTION = (
    "Train one candidate network for one epoch in the sandbox and report the outcome. `code` is a "
    "complete Python module defining `class Net(nn.Module)` (its constructor may take "
    "`num_classes`). Returns status ('ok' or 'error'), kind (the failure class: syntax, no_net, "
    "import, shape, oom, timeout, nan, runtime, killed, over_limit), message, val_accuracy, "
    "params, flops, train_seconds and code_hash."
)

_evaluators: dict[str, Evaluator] = {}
_executors: dict[tuple[str, str, int], RayExecutor] = {}
_local_lock = threading.Lock()


class CandidateEvaluator(Protocol):
    """What trains a candidate: an `Evaluator`, or an executor in front of one."""

    def evaluate(self, code: str) -> Mapping[str, Any]: ...


class LocalExecutor:
    """Evaluations in this process, one at a time.

    One machine's sandbox trains one candidate at a time (one GPU; one warm container): the
    branches of a parallel round overlap their LLM calls and queue here for training.
    """

    def __init__(self, evaluator: CandidateEvaluator) -> None:
        self.evaluator = evaluator

    def check(self) -> None:
        pass

    def evaluate(self, code: str) -> Mapping[str, Any]:
        with _local_lock:
            return self.evaluator.evaluate(code)


def evaluator_for(settings: SandboxSettings) -> Evaluator:
    """One evaluator per distinct sandbox settings, built on first use (dataset prepared once).

    Subclasses of SandboxSettings (the search's settings) share the evaluator of their sandbox
    part: changing an LLM setting does not prepare the dataset again.
    """
    key = settings.model_dump_json(include=set(SandboxSettings.model_fields))
    if key not in _evaluators:
        _evaluators[key] = evaluator_from_settings(settings)
    return _evaluators[key]


def executor_for(
    settings: SandboxSettings,
    evaluator: CandidateEvaluator,
    executor: str = "local",
    retries: int = 2,
) -> LocalExecutor | RayExecutor:
    """Where `evaluator`'s candidates train: `local`, or a Ray cluster (`ray`, `ray://HOST:PORT`).

    The Ray executor keeps `evaluator` for the precheck and the result cache and sends the rest
    to the cluster (sandbox/backends/ray_executor.py); one per distinct settings and address.
    """
    if executor == "local":
        return LocalExecutor(evaluator)
    if not isinstance(evaluator, Evaluator):
        raise TypeError("the Ray executor needs a real Evaluator for its precheck and cache")
    key = (settings.model_dump_json(include=set(SandboxSettings.model_fields)), executor, retries)
    if key not in _executors:
        address = None if executor == "ray" else executor
        _executors[key] = RayExecutor(settings, evaluator, address, retries)
    return _executors[key]


def default_evaluator() -> Evaluator:
    return evaluator_for(load_settings())


def make_train_candidate(evaluator: CandidateEvaluator | None = None) -> BaseTool:
    """The tool bound to one evaluator (or, by default, to the current `NASLOOP_*` settings)."""

    @tool("train_candidate", description=DESCRIPTION)
    def train_candidate(code: str) -> dict[str, Any]:
        result = (evaluator or default_evaluator()).evaluate(code)
        return dict(result)

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
        print(f"nasloop: error: {exc}", file=sys.stderr)
        return 2
    except InfrastructureFault as exc:  # the sandbox failed before the candidate's code ran
        print(f"nasloop: infrastructure fault: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result, indent=2))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
