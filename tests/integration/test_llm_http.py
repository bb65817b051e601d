"""agent.llm.client against a real HTTP server: the real ChatOpenAI, openai SDK, sockets; no mocks.

The fake server (tests/fakes/openai_server.py) records every request body, so these tests check
what actually goes over the wire (`max_tokens`, `seed`), and its fault queue drives the retry
rules: transient trouble is retried a bounded number of times, a refused request is not.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from agent.llm.client import LLMUnavailable, ask, make_chat, preflight, text_of
from agent.settings import RoleConfig
from tests.fakes import MNIST5K_REPLIES, FakeOpenAIServer, ScriptedResponder
from tests.fakes.openai_server import CHARS_PER_TOKEN, approx_tokens
from tests.helpers.paths import ROOT

GEN, IMP = "fake-generator", "fake-improver"
FAST = 0.01  # backoff between attempts in these tests, seconds
PROMPT = [SystemMessage("You design neural networks."), HumanMessage("Write a Net.")]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    replies = {GEN: ["first generator reply", "second generator reply"], IMP: ['{"a": 1}']}
    with FakeOpenAIServer(ScriptedResponder(replies)) as srv:
        yield srv


def config(url: str, model: str = GEN, max_tokens: int = 256) -> RoleConfig:
    return RoleConfig(url, model, "secret", 0.7, max_tokens)


def closed_port_url() -> str:
    with socket.socket() as sock:  # bind, note the port, release it: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_reply_text_and_tokens(server: FakeOpenAIServer) -> None:
    chat = make_chat("generator", config(server.base_url), timeout_s=5)
    first = ask(chat, PROMPT, role="generator")
    second = ask(chat, PROMPT, role="generator")
    prompt_tokens = approx_tokens("You design neural networks.Write a Net.")
    assert (first.text, first.tokens) == (
        "first generator reply",
        prompt_tokens + approx_tokens(first.text),
    )
    assert first.finish_reason == "stop"  # what the server said, archived with the call
    assert second.text == "second generator reply"  # the script advances per request


def test_request_carries_max_tokens_seed_and_plain_chat(server: FakeOpenAIServer) -> None:
    chat = make_chat("improver", config(server.base_url, IMP, max_tokens=64), timeout_s=5)
    ask(chat, PROMPT, role="improver", seed=1234)
    ask(chat, PROMPT, role="improver")
    with_seed, without = server.requests
    # langchain-openai renames max_tokens to max_completion_tokens; make_chat adds max_tokens back
    assert with_seed["max_tokens"] == 64
    assert with_seed["max_completion_tokens"] == 64
    assert with_seed["seed"] == 1234
    assert "seed" not in without
    assert with_seed["model"] == IMP
    assert with_seed["temperature"] == 0.7
    assert with_seed["stream"] is False
    assert not {"response_format", "tools", "tool_choice"} & with_seed.keys()
    assert [m["role"] for m in with_seed["messages"]] == ["system", "user"]


def test_max_tokens_truncates_on_a_server_that_only_reads_max_tokens() -> None:
    long = "x = 1\n" * 500  # ~750 tokens
    with FakeOpenAIServer(ScriptedResponder({GEN: [long]})) as srv:
        chat = make_chat("generator", config(srv.base_url, max_tokens=64), timeout_s=5)
        reply = ask(chat, PROMPT, role="generator")
    assert reply.text == long[: 64 * CHARS_PER_TOKEN]


def test_empty_reply_is_a_reply() -> None:
    with FakeOpenAIServer(ScriptedResponder({GEN: [""]})) as srv:
        reply = ask(make_chat("generator", config(srv.base_url), 5), PROMPT, role="generator")
    assert reply.text == ""
    assert reply.tokens == approx_tokens("You design neural networks.Write a Net.")


@pytest.mark.parametrize("fault", ["500", "503", "429", "close", "garbage", "stall:2"])
def test_transient_fault_is_retried_then_succeeds(server: FakeOpenAIServer, fault: str) -> None:
    server.add_faults(fault)
    chat = make_chat("generator", config(server.base_url), timeout_s=0.5)
    reply = ask(chat, PROMPT, role="generator", retries=2, backoff_s=FAST)
    assert reply.text == "first generator reply"
    assert len(server.requests) == 2


@pytest.mark.parametrize(("fault", "reason"), [("close", "disconnected"), ("stall:5", "0.5 s")])
def test_persistent_trouble_gives_up_after_bounded_attempts(
    server: FakeOpenAIServer, fault: str, reason: str
) -> None:
    server.add_faults(*[fault] * 3)
    chat = make_chat("generator", config(server.base_url), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as info:
        ask(chat, PROMPT, role="generator", retries=2, backoff_s=FAST)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"generator LLM at {server.base_url} failed after 3 attempts")
    assert reason in message
    assert "NASLOOP_GENERATOR_BASE_URL" in message
    assert len(server.requests) == 3
    assert elapsed < 3 * 0.5 + 1.5  # three timeouts at most, plus backoff and slack


def test_retries_zero_means_one_attempt(server: FakeOpenAIServer) -> None:
    server.add_faults("500")
    chat = make_chat("generator", config(server.base_url), timeout_s=5)
    with pytest.raises(LLMUnavailable, match=r"failed after 1 attempt \(HTTP 500"):
        ask(chat, PROMPT, role="generator", retries=0)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "fix"),
    [("400", "NASLOOP_GENERATOR_MAX_TOKENS"), ("401", "NASLOOP_GENERATOR_API_KEY")],
)
def test_refused_request_is_not_retried(server: FakeOpenAIServer, fault: str, fix: str) -> None:
    server.add_faults(fault)
    chat = make_chat("generator", config(server.base_url), timeout_s=5)
    with pytest.raises(LLMUnavailable) as info:
        ask(chat, PROMPT, role="generator", retries=3, backoff_s=FAST)
    message = str(info.value)
    assert len(server.requests) == 1
    assert f"refused the request (HTTP {fault}: injected fault" in message
    assert server.base_url in message
    assert fix in message


def test_a_web_page_instead_of_an_llm_is_not_retried(server: FakeOpenAIServer) -> None:
    server.add_faults("html")
    chat = make_chat("generator", config(server.base_url), timeout_s=5)
    with pytest.raises(LLMUnavailable, match=r"not answer like an OpenAI.*<!doctype html>.*/v1"):
        ask(chat, PROMPT, role="generator", retries=3, backoff_s=FAST)
    assert len(server.requests) == 1


def test_unknown_model_is_a_404_with_the_servers_message(server: FakeOpenAIServer) -> None:
    chat = make_chat("improver", config(server.base_url, "no-such-model"), timeout_s=5)
    with pytest.raises(LLMUnavailable) as info:
        ask(chat, PROMPT, role="improver", retries=3, backoff_s=FAST)
    message = str(info.value)
    assert len(server.requests) == 1
    assert "HTTP 404: The model `no-such-model` does not exist" in message
    assert "NASLOOP_IMPROVER_MODEL" in message
    assert "\n" not in message


def test_connection_refused_is_retried_then_reported() -> None:
    url = closed_port_url()
    chat = make_chat("generator", config(url), timeout_s=5)
    with pytest.raises(LLMUnavailable, match=r"failed after 3 attempts \(Connection refused\)"):
        ask(chat, PROMPT, role="generator", retries=2, backoff_s=FAST)


def test_preflight_passes_on_a_live_server(server: FakeOpenAIServer) -> None:
    preflight("generator", config(server.base_url))  # returns None, raises nothing
    assert server.requests == []  # a GET: nothing generated


def test_preflight_on_a_closed_port_fails_fast_and_names_the_fix() -> None:
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as info:
        preflight("generator", config(url))
    assert time.monotonic() - started < 1
    assert str(info.value) == (
        f"cannot reach the generator LLM at {url} (Connection refused): start a server "
        "(see README, 'LLM servers') or set NASLOOP_GENERATOR_BASE_URL"
    )


def test_preflight_reports_http_errors_and_silence(server: FakeOpenAIServer) -> None:
    server.add_faults("503", "stall:3")
    with pytest.raises(LLMUnavailable, match=r"answered GET /models with HTTP 503 .*loading"):
        preflight("improver", config(server.base_url))
    with pytest.raises(LLMUnavailable, match=r"\(no answer in 0.3 s\).*NASLOOP_IMPROVER_BASE_URL"):
        preflight("improver", config(server.base_url), timeout_s=0.3)
    with pytest.raises(LLMUnavailable, match=r"HTTP 404 .*ends in /v1"):
        preflight("generator", config(server.base_url.removesuffix("/v1")))
    server.add_faults("html")
    with pytest.raises(LLMUnavailable, match=r"GET /models with something that is not JSON"):
        preflight("generator", config(server.base_url))


@pytest.mark.parametrize("url", ["127.0.0.1:8080/v1", "http://127.0.0.1:port/v1"])
def test_a_malformed_url_is_named(url: str) -> None:
    with pytest.raises(LLMUnavailable, match=r"NASLOOP_GENERATOR_BASE_URL=.* is not usable"):
        preflight("generator", config(url))
    with pytest.raises(LLMUnavailable, match=r"NASLOOP_GENERATOR_BASE_URL=.* is not usable"):
        make_chat("generator", config(url), 5)


def test_text_of_joins_text_parts() -> None:
    parts: list[str | dict[object, object]] = [
        {"type": "reasoning", "reasoning": "hmm"},
        {"type": "text", "text": "class Net"},
        "(nn.Module): ...",
    ]
    assert text_of(parts) == "class Net(nn.Module): ..."


def test_fake_server_streams_with_usage(server: FakeOpenAIServer) -> None:
    chat = ChatOpenAI(
        model=GEN,
        base_url=server.base_url,
        api_key="x",
        streaming=True,
        stream_usage=True,
        max_retries=0,
        extra_body={"max_tokens": 3},
    )
    chunks = list(chat.stream(PROMPT))
    text = "".join(str(c.content) for c in chunks)
    assert text == "first generator reply"[: 3 * CHARS_PER_TOKEN]
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage
    assert usage[-1]["output_tokens"] == 3
    assert server.requests[0]["stream_options"] == {"include_usage": True}


def test_reply_delay_paces_every_completion() -> None:
    """A paced server answers each completion after its delay, like a model writing it."""
    with FakeOpenAIServer(ScriptedResponder({GEN: ["a", "b"]}), reply_delay=0.3) as server:
        chat = make_chat("generator", config(server.base_url), timeout_s=5)
        started = time.perf_counter()
        texts = [ask(chat, PROMPT, role="generator", retries=0).text for _ in range(2)]
        assert texts == ["a", "b"]
        assert time.perf_counter() - started >= 0.6


def test_a_reply_nobody_waited_for_stays_in_the_script() -> None:
    """A client that hangs up during the delay (a run killed mid-call) takes no reply: the next
    request, say the resumed run's, gets the one the dead client would have had."""
    with FakeOpenAIServer(ScriptedResponder({GEN: ["a", "b"]}), reply_delay=0.5) as server:
        body = json.dumps({"model": GEN, "messages": [{"role": "user", "content": "hi"}]})
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type:"
                b" application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode())
            )
            time.sleep(0.1)  # the server is now "writing" the reply
        chat = make_chat("generator", config(server.base_url), timeout_s=5)
        assert ask(chat, PROMPT, role="generator", retries=0).text == "a"
        assert len(server.requests) == 2


def test_recorded_mnist_script_loads() -> None:
    script = json.loads(MNIST5K_REPLIES.read_text())
    assert set(script) == {GEN, IMP}
    assert len(script[GEN]) >= 10
    assert len(script[IMP]) >= 10
    assert ScriptedResponder(script)({"model": GEN}) == script[GEN][0]


def test_subprocess_mode_prints_ready_and_answers(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({GEN: ["from a subprocess"]}))
    cmd = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--replies", str(replies), "--faults", "500"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the fake server printed nothing within 15 s"
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.removeprefix("READY ")
        with pytest.raises(LLMUnavailable, match="HTTP 500"):  # faults count GETs too
            preflight("generator", config(url))
        preflight("generator", config(url))
        chat = make_chat("generator", config(url), timeout_s=5)
        assert ask(chat, PROMPT, role="generator", retries=0).text == "from a subprocess"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
