"""The LLM-side fixes in a whole search: the real graph, the real ChatOpenAI over HTTP to the fake
OpenAI server (tests/fakes/openai_server.py, playing tests/fakes/repairs.py's small models), and
the process sandbox's real dry run and training on the offline MNIST-5k task.

What a user would check: the module the real dry run failed is repaired by a model that needs to
be shown where, the request it was sent holds the lines and shape trace the sandbox reported, a
resample goes over the wire hotter, and a budget of LLM calls is exactly what the server saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.archive.calls import CallLog
from agent.archive.candidates import RunArchive
from agent.check.novelty import REASK_SEED_STEP
from agent.results.quality import run_quality
from agent.search import search
from agent.settings import Settings
from tests.fakes import FakeOpenAIServer, ScriptedResponder
from tests.fakes.mistakes import GENERATOR, IMPROVER
from tests.fakes.openai_server import Responder
from tests.fakes.repairs import (
    ADVICE,
    CHANNELS_WRONG,
    FINE,
    RIGHT_LINE,
    WRONG_LINE,
    WRONG_LINE_NUMBER,
    EverNewMistakes,
    LocatingResponder,
    follows,
)


@pytest.fixture
def searched(tmp_path: Path) -> Iterator[Any]:
    """Run a search against a fake server playing `responder`: (archive, requests on the wire)."""
    servers: list[FakeOpenAIServer] = []

    def run(responder: Responder, **settings: Any) -> tuple[RunArchive, list[dict[str, Any]]]:
        server = FakeOpenAIServer(responder).start()
        servers.append(server)
        run_id = f"fix{len(servers)}"
        values: dict[str, Any] = {
            "dataset": "mnist5k",
            "data_dir": tmp_path / "data",
            "runs_dir": tmp_path / "runs",
            "sandbox": "process",
            "train_limit": 300,
            "timeout_s": 120,
            "generator_base_url": server.base_url,
            "generator_model": GENERATOR,
            "improver_model": IMPROVER,
            "llm_retries": 0,
            "final_top_k": 0,
            "iterations": 1,
            **settings,
        }
        search(Settings(**values), run_id, resuming=False, quiet=True)
        return RunArchive(tmp_path / "runs" / run_id), server.requests

    yield run
    for server in servers:
        server.close()


def attempts(archive: RunArchive) -> list[tuple[str, str, str]]:
    return [(a["source"], a["stage"], a["kind"]) for a in archive.attempts()]


def test_a_repair_request_locates_what_the_sandbox_reported(searched: Any) -> None:
    # run seed 2: the iteration's first repair asks with seed 1002, one the small model follows at
    archive, requests = searched(
        LocatingResponder(), repair_attempts=1, fix_order="repair", run_seed=2
    )
    assert follows(requests[1]["seed"]) and requests[1]["seed"] == 2 + REASK_SEED_STEP
    assert attempts(archive) == [("generator", "dry_run", "shape"), ("repair", "train", "ok")]
    (row,) = archive.rows()
    assert row["status"] == "ok" and row["val_accuracy"] is not None
    assert RIGHT_LINE in (archive.run_dir / row["code_path"]).read_text()
    calls = CallLog(archive.run_dir).calls()
    assert [(c["role"], c["attempt"]) for c in calls] == [("generator", 0), ("generator", 1)]
    sent = calls[1]["messages"][-1]["content"]  # the repair request, as archived
    assert f">> {WRONG_LINE_NUMBER} | {WRONG_LINE}" in sent
    assert "conv2 Conv2d FAILED on input (2, 32, 14, 14)" in sent  # the real dry run's trace
    assert requests[1]["messages"][-1]["content"] == sent  # what went over the wire
    quality = run_quality(archive.run_dir)
    assert quality["llm_calls"] == len(requests) == 2
    assert quality["fixes_succeeded"] == {"repair": 1}


def test_a_resample_goes_over_the_wire_hotter_and_names_the_error(searched: Any) -> None:
    script = ScriptedResponder({GENERATOR: [CHANNELS_WRONG, FINE], IMPROVER: [ADVICE]})
    archive, requests = searched(
        script, repair_attempts=2, fix_order="resample", generator_temperature=0.5
    )
    assert [r["temperature"] for r in requests] == [0.5, 0.8]
    note = requests[1]["messages"][-1]["content"]
    assert "The last program written for this step failed with shape: " in note
    assert "to have 16 channels, but got 32 channels" in note
    assert attempts(archive) == [("generator", "dry_run", "shape"), ("resample", "train", "ok")]


def test_a_budget_of_calls_is_never_overspent_by_fixes(searched: Any) -> None:
    archive, requests = searched(
        EverNewMistakes(), repair_attempts=5, fix_order="resample", llm_calls=3, iterations=5
    )
    assert len(requests) == 3  # the first ask and two resamples; no Improver, no iteration 1
    assert [a[0] for a in attempts(archive)] == ["generator", "resample", "resample"]
    assert len(archive.rows()) == 1 and run_quality(archive.run_dir)["llm_calls"] == 3
