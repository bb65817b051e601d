"""Running `python -m agent.run` the way a user does, for the integration tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.paths import ROOT


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any NASLOOP_* of its own, plus a quick setup:
    the offline dataset, a small training subset, the Docker sandbox, one LLM retry, no final
    test at the end of a run (tests/integration/test_results.py asks for one), and the paper's
    protocol (no novelty check, no auto-fix, its prompts): these tests' scripted replies count
    on each reply being trained as it is (a repeat is a cache hit, a shape error stays one);
    tests/integration/test_check_step.py runs the check step itself."""
    # COLUMNS and LINES too: pytest-xdist's workers export 80x24, which rich would believe over
    # the size of the terminal a test gives the run (tests/integration/test_live_view.py)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NASLOOP_") and k not in ("COLUMNS", "LINES")
    }
    env.update(
        NASLOOP_DATASET="mnist5k",
        NASLOOP_DATA_DIR=str(tmp_path / "data"),
        NASLOOP_RUNS_DIR=str(tmp_path / "runs"),
        NASLOOP_SANDBOX="docker",
        NASLOOP_TRAIN_LIMIT="600",
        NASLOOP_TIMEOUT_S="120",
        NASLOOP_LLM_RETRIES="1",
        NASLOOP_FINAL_TOP_K="0",
        NASLOOP_NOVELTY="false",
        NASLOOP_AUTO_FIX="false",
        NASLOOP_PROMPT_STYLE="paper",
    )
    env.update(extra)
    return env


def fake_model_env(tmp_path: Path, base_url: str, **extra: str) -> dict[str, str]:
    """`agent_env` with both roles served by the fake OpenAI server at `base_url`: its
    `fake-generator` and `fake-improver` models (tests/fakes); `extra` may override any of them."""
    roles = {
        "NASLOOP_GENERATOR_BASE_URL": base_url,
        "NASLOOP_GENERATOR_MODEL": "fake-generator",
        "NASLOOP_IMPROVER_MODEL": "fake-improver",
    }
    return agent_env(tmp_path, **{**roles, **extra})


def agent_run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def llm_server(replies: Path, *options: str) -> Iterator[str]:
    """Base URL of the test's own OpenAI-compatible server, run as a separate process replaying
    `replies` (tests/fakes/openai_server.py; `options` are its command-line flags)."""
    with _fake_server("--replies", str(replies), *options) as url:
        yield url


@contextlib.contextmanager
def persona_server(persona: str, *options: str) -> Iterator[str]:
    """Like `llm_server`, but the server plays a persona (`--persona`, tests/fakes/mistakes.py)."""
    with _fake_server("--persona", persona, *options) as url:
        yield url


@contextlib.contextmanager
def _fake_server(*flags: str) -> Iterator[str]:
    """The fake server as a process of its own: its base URL once it prints READY; killed after."""
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", *flags]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        assert ready and ready[0] == "READY", ready
        yield ready[1]
    finally:
        server.kill()
        server.wait()
