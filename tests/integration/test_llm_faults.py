"""`python -m agent.run` against an LLM server that misbehaves, one fault per case.

The server is the test's own OpenAI-compatible server (tests/fakes), in this process: it refuses
connections, answers 5xx, stalls past the client's timeout, or answers with text that holds no
code, cut-off code, prose where JSON was asked, or two megabytes. Every case must end on its own
(retries are bounded, a stall is cut by the timeout), with the exit code that says what happened
(0 done, 1 stopped resumably), no traceback, and an archive that counts exactly the iterations
that ran, each with the kind its reply deserves.

Faults are consumed one per request, `GET /models` included: the preflight asks once per role,
so every fault list below starts with two `None`s.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from agent.replies.advice_cleaning import UNREADABLE
from agent.replies.code import extract_code
from tests.fakes.openai_server import FakeOpenAIServer, Fault, ScriptedResponder
from tests.helpers.agent_cli import agent_run, fake_model_env

pytestmark = pytest.mark.docker

TIMEOUT_S = 3.0  # NASLOOP_LLM_TIMEOUT_S: one request
RETRIES = 1  # NASLOOP_LLM_RETRIES: so two attempts per request, one backoff of 1 s between
PREFLIGHT: list[Fault] = [None, None]  # GET /models for the generator, then the improver
SLACK_S = 60.0  # start-up (imports, dataset, sandbox check) and a short training or two

GOOD = (
    "```python\n"
    "import torch.nn as nn\n\n\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, num_classes=10):\n"
    "        super().__init__()\n"
    "        self.body = nn.Sequential(\n"
    "            nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, num_classes)\n"
    "        )\n\n"
    "    def forward(self, x):\n"
    "        return self.body(x)\n"
    "```\n"
)
PROSE = (
    "To fix the shape error, the first linear layer must match the flattened feature map: "
    "after two poolings a 28x28 image is 7x7, so use 32 * 7 * 7 inputs instead of 64 * 8 * 8."
)
REFUSAL = "I'm sorry, I can't help with writing that network."
ADVICE_SUGGESTION = "Add a second hidden layer of 64 units."
ADVICE = json.dumps({"problem": "small model", "suggestion": ADVICE_SUGGESTION})
IMPROVER_PROSE = (
    "The network looks reasonable and the loss went down nicely. There is not much more to say "
    "here; keep going and see what happens next time."
)
WIDE = (  # a longer module whose first 256 characters end inside `nn.Sequential(`
    "```python\n"
    "import torch.nn as nn\n\n\n"
    "class Net(nn.Module):\n"
    "    def __init__(self, num_classes=10):\n"
    "        super().__init__()\n"
    "        self.body = nn.Sequential(\n"
    "            nn.Flatten(),\n"
    "            nn.Linear(28 * 28, 64),\n"
    "            nn.ReLU(),\n"
    "            nn.Linear(64, 64),\n"
    "            nn.ReLU(),\n"
    "            nn.Linear(64, num_classes),\n"
    "        )\n\n"
    "    def forward(self, x):\n"
    "        return self.body(x)\n"
    "```\n"
)


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    rows: list[dict[str, Any]]

    @property
    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.rows]

    def stopped_line(self) -> str:
        """The one `nasloop: stopped: ...` line a resumable stop prints."""
        lines = [line for line in self.err.splitlines() if line.startswith("nasloop: stopped:")]
        assert len(lines) == 1, self.err
        assert "resume it with `python -m agent.run --run-id" in lines[0], lines[0]
        return lines[0]


def serve(
    generator: Sequence[str], improver: Sequence[str] = (ADVICE,), faults: Sequence[Fault] = ()
) -> FakeOpenAIServer:
    responder = ScriptedResponder({"fake-generator": generator, "fake-improver": improver})
    return FakeOpenAIServer(responder, faults=[*PREFLIGHT, *faults]).start()


@pytest.fixture
def servers() -> Iterator[list[FakeOpenAIServer]]:
    """Servers a test starts: closed at the end, which also wakes any handler still stalling."""
    started: list[FakeOpenAIServer] = []
    yield started
    for server in started:
        server.close()


def env_for(tmp_path: Path, server: FakeOpenAIServer, **extra: str) -> dict[str, str]:
    return fake_model_env(
        tmp_path,
        server.base_url,
        NASLOOP_LLM_TIMEOUT_S=f"{TIMEOUT_S:g}",
        NASLOOP_LLM_RETRIES=str(RETRIES),
        NASLOOP_TRAIN_LIMIT="300",
        NASLOOP_TIMEOUT_S="60",
        **extra,
    )


def run(
    tmp_path: Path,
    server: FakeOpenAIServer,
    iterations: int,
    *,
    run_id: str = "r",
    on_start: FakeOpenAIServer | None = None,
    **extra: str,
) -> Outcome:
    """One `python -m agent.run`; `on_start`: a server to close once the run has started (the
    preflight passed), so that the search itself finds the port closed."""
    started = time.monotonic()
    proc = agent_run(
        env_for(tmp_path, server, **extra), "--run-id", run_id, "--iterations", str(iterations)
    )
    head = ""
    if on_start is not None:
        assert proc.stderr is not None
        for line in proc.stderr:
            head += line
            if line.startswith("nasloop: starting run"):
                on_start.close()
                break
    try:
        out, err = proc.communicate(timeout=240)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    seconds = time.monotonic() - started
    run_dir = tmp_path / "runs" / run_id
    rows = RunArchive(run_dir).rows() if (run_dir / "checkpoints.sqlite").exists() else []
    outcome = Outcome(proc.returncode, out, head + err, seconds, rows)
    print(f"exit {outcome.code} in {seconds:.1f} s, kinds {outcome.kinds}")
    assert "Traceback" not in outcome.err, outcome.err
    assert [r["iteration"] for r in rows] == list(range(len(rows))), rows
    return outcome


def suggestions(rows: list[dict[str, Any]]) -> list[str | None]:
    return [r["next_suggestion"] for r in rows]


def closed_suggestions(rows: list[dict[str, Any]]) -> list[str | None]:
    return [
        json.loads(r["closed_triple"])["suggestion"] if r["closed_triple"] else None for r in rows
    ]


def test_connection_refused_mid_run_stops_resumably(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    # "close" drops the first generator request in case it gets in before the server is gone;
    # the retry, a backoff later, finds the port closed either way
    server = serve([GOOD], faults=["close"])
    servers.append(server)
    done = run(tmp_path, server, 3, on_start=server)
    assert done.code == 1, done.err
    line = done.stopped_line()
    assert "generator LLM" in line and "2 attempts" in line and "Connection refused" in line
    assert done.rows == []
    assert done.seconds < 2 * TIMEOUT_S + 1 + SLACK_S


def test_5xx_and_other_transient_faults_are_retried_and_the_run_completes(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    # one fault in front of every request but the last: each is cured by the one retry
    faults: list[Fault] = ["500", None, "429", None, "close", None, "garbage", None, "503", None]
    server = serve([GOOD, PROSE, REFUSAL], faults=faults)
    servers.append(server)
    done = run(tmp_path, server, 3)
    assert done.code == 0, done.err
    assert done.kinds == ["ok", "no_code", "no_code"]
    # 3 generator + 2 improver calls (none after the last iteration), 5 of them asked twice
    assert len(server.requests) == 5 + 5
    assert "Traceback" not in done.err and "attempt 1 failed" in done.err
    assert done.seconds < 5 * 1 + SLACK_S


def test_persistent_5xx_stops_resumably_and_the_resume_completes_exactly(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    # iteration 0 and its advice go through; then the generator gets 500 twice: give up
    server = serve([PROSE, GOOD, REFUSAL], faults=[None, None, "500", "500"])
    servers.append(server)
    first = run(tmp_path, server, 3)
    assert first.code == 1, first.err
    line = first.stopped_line()
    assert "generator LLM" in line and "HTTP 500" in line and "2 attempts" in line
    assert first.kinds == ["no_code"]
    assert first.seconds < 1 + SLACK_S

    second = run(tmp_path, server, 3)  # the faults are spent: the server is healthy now
    assert second.code == 0, second.err
    assert "resuming run r" in second.err
    assert second.kinds == ["no_code", "ok", "no_code"]
    # the advice given before the stop is the one the resumed iteration closes
    assert closed_suggestions(second.rows)[1] == second.rows[0]["next_suggestion"]
    assert len(server.requests) == 2 + 2 + 3  # (gen, imp), two failed gens, then gen, imp, gen


def test_a_stalled_server_is_cut_by_the_timeout_never_a_hang(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    server = serve([GOOD], faults=["stall:120", "stall:120"])
    servers.append(server)
    done = run(tmp_path, server, 2)
    assert done.code == 1, done.err
    line = done.stopped_line()
    assert f"no answer in {TIMEOUT_S:g} s" in line and "2 attempts" in line
    assert done.rows == []
    assert len(server.requests) == RETRIES + 1
    # (retries + 1) timeouts and one backoff, plus start-up: far below the 120 s stall
    assert done.seconds < (RETRIES + 1) * TIMEOUT_S + 1 + SLACK_S


def test_replies_without_code_count_as_no_code_iterations(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    server = serve([PROSE, REFUSAL, "", GOOD])
    servers.append(server)
    done = run(tmp_path, server, 4)
    assert done.code == 0, done.err
    assert done.kinds == ["no_code", "no_code", "no_code", "ok"]
    assert all(r["message"] for r in done.rows)


def test_code_cut_off_by_max_tokens_is_a_syntax_iteration(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    max_tokens = 64  # the smallest the settings allow; the fake server keeps 4 chars a token
    served = WIDE[: max_tokens * 4]
    cut = WIDE[: len(WIDE) * 2 // 3]  # and a reply cut off before it reached the client
    for text in (served, cut):  # the premise: each is a module that stops mid-statement
        code = extract_code(text)
        assert code is not None and "class Net" in code
        with pytest.raises(SyntaxError):
            ast.parse(code)
    server = serve([WIDE, cut])
    servers.append(server)
    done = run(tmp_path, server, 2, NASLOOP_GENERATOR_MAX_TOKENS=str(max_tokens))
    assert done.code == 0, done.err
    assert done.kinds == ["syntax", "syntax"]
    assert server.requests[0]["max_tokens"] == max_tokens
    assert suggestions(done.rows) == [ADVICE_SUGGESTION, None]


def test_improver_prose_instead_of_json_is_recorded_as_unreadable(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    server = serve([GOOD, PROSE], improver=[IMPROVER_PROSE, "", "<html>not json</html>"])
    servers.append(server)
    done = run(tmp_path, server, 3)
    assert done.code == 0, done.err
    assert done.kinds == ["ok", "no_code", "ok"]  # the third is the first again (cached)
    assert done.rows[2]["cached"] == 1
    # no invented diagnosis or advice: the memory says the reply could not be read
    assert suggestions(done.rows) == ["", "", None]
    assert [r["next_problem"] for r in done.rows[:2]] == [UNREADABLE, UNREADABLE]
    # each triple is still recorded: the next iteration closes it with its outcome
    assert closed_suggestions(done.rows) == [None, "", ""]
    triple = json.loads(done.rows[1]["closed_triple"])
    assert triple["iteration"] == 1 and triple["outcome"]
    assert triple["problem"] == UNREADABLE


def test_a_huge_reply_is_handled_within_bounds(
    tmp_path: Path, servers: list[FakeOpenAIServer], sandbox_image: str
) -> None:
    filler = "This paragraph explains the design once more, in great detail. " * 16 + "\n\n"
    padding = filler * (2_000_000 // len(filler))
    assert len(padding) > 1_900_000
    server = serve([GOOD + "\n" + padding, padding, "```python\n" + padding])
    servers.append(server)
    done = run(tmp_path, server, 3, NASLOOP_GENERATOR_MAX_TOKENS="1000000")
    assert done.code == 0, done.err
    assert done.kinds == ["ok", "no_code", "no_code"]
    assert [len(r["message"] or "") < 5000 for r in done.rows] == [True] * 3
    code = Path(done.rows[0]["code_path"])
    code = code if code.is_absolute() else tmp_path / "runs" / "r" / code
    assert code.stat().st_size < 1000  # the module, not the reply
    assert done.seconds < SLACK_S + 30
