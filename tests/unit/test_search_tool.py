"""`search_architectures` without a search: its schema, its answers to bad input, its mapping.

The real search behind the tool is exercised in tests/integration/test_other_agents.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

import agent.search
from agent.llm.client import LLMUnavailable
from agent.settings import Settings
from tests.fakes import FakeOpenAIServer
from tests.helpers.paths import ROOT
from tools.search import search_architectures


def test_schema_is_what_a_calling_model_sees() -> None:
    assert search_architectures.name == "search_architectures"
    schema = convert_to_openai_tool(search_architectures)["function"]["parameters"]
    assert set(schema["properties"]) == {"dataset", "iterations", "constraints"}
    assert set(schema["required"]) == {"dataset", "iterations"}
    assert schema["properties"]["iterations"]["minimum"] == 1
    assert "best_code" in search_architectures.description


@pytest.mark.parametrize("args", [{"dataset": "mnist5k", "iterations": 0}, {"iterations": 2}])
def test_arguments_the_schema_refuses_raise_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: dict[str, Any]
) -> None:
    monkeypatch.setenv("NASLOOP_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(ValidationError):
        search_architectures.invoke(args)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("dataset", "url", "words"),
    [
        ("imagenet22k", None, "mnist5k"),  # the message lists the datasets there are
        ("mnist5k", "http://127.0.0.1:9/v1", "NASLOOP_GENERATOR_BASE_URL"),
    ],
)
def test_requests_this_machine_cannot_run_come_back_as_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, url: str | None, words: str
) -> None:
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("NASLOOP_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setenv("NASLOOP_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("NASLOOP_SANDBOX", "process")
        monkeypatch.setenv("NASLOOP_GENERATOR_BASE_URL", url or server.base_url)
        result = search_architectures.invoke({"dataset": dataset, "iterations": 2})
    assert set(result) == {"error"} and words in result["error"], result
    assert "\n" not in result["error"]
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def fake_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """Replaces the preflight and the search itself; records what the search was given."""
    calls: list[Any] = []
    best = tmp_path / "best.py"
    best.write_text("class Net: ...\n")

    def search(settings: Settings, run_id: str, resuming: bool, quiet: bool) -> dict[str, Any]:
        calls.append((settings, run_id, resuming, quiet))
        if settings.dataset == "broken":
            raise LLMUnavailable("the generator LLM at http://x/v1 stopped answering")
        return {
            "run_id": run_id,
            "run_dir": str(tmp_path / run_id),
            "stop_reason": "budget",
            "iterations": settings.iterations,
            "success_rate": 0.5,
            "best_val_accuracy": 0.9,
            "best_code_path": str(best),
        }

    monkeypatch.setattr(agent.search, "preflight_all", lambda settings: None)
    monkeypatch.setattr(agent.search, "search", search)
    return calls


def test_arguments_override_the_environment_and_the_summary_is_mapped(
    monkeypatch: pytest.MonkeyPatch, fake_search: list[Any]
) -> None:
    monkeypatch.setenv("NASLOOP_DATASET", "cifar10")
    monkeypatch.setenv("NASLOOP_ITERATIONS", "50")
    monkeypatch.setenv("NASLOOP_HISTORY_K", "3")
    result = search_architectures.invoke(
        {"dataset": "mnist5k", "iterations": 4, "constraints": "under 50k parameters"}
    )
    ((settings, run_id, resuming, quiet),) = fake_search
    assert (settings.dataset, settings.iterations) == ("mnist5k", 4)
    assert settings.constraints == "under 50k parameters" and settings.history_k == 3
    assert not resuming and quiet
    assert result["run_id"] == run_id
    assert result["best_code"] == "class Net: ...\n"
    assert (result["best_val_accuracy"], result["success_rate"], result["iterations"]) == (
        0.9,
        0.5,
        4,
    )


def test_a_search_stopped_half_way_names_its_run_to_resume(fake_search: list[Any]) -> None:
    result = search_architectures.invoke({"dataset": "broken", "iterations": 3})
    ((_, run_id, _, _),) = fake_search
    assert result["run_id"] == run_id
    assert "stopped answering" in result["error"]
    assert f"python -m agent.run --run-id {run_id}" in result["error"]


def test_tools_import_without_the_search_graph() -> None:
    probe = (
        "import sys, tools.search; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('agent', 'graphs')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
