"""The Improver's JSON schema over real HTTP: sent where the server takes it, dropped once (and for
the rest of the process) where a server refuses it with HTTP 400, never at the cost of the reply."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

import agent.llm.structured as structured
from agent.llm.client import LLMUnavailable, make_chat
from agent.settings import RoleConfig
from agent.llm.structured import ADVICE_SCHEMA, ask_for_advice
from tests.fakes import FakeOpenAIServer, ScriptedResponder

ADVICE = json.dumps({"problem": "too shallow", "suggestion": "add a conv block"})
PROMPT = [SystemMessage("You review networks."), HumanMessage("Advise.")]


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structured, "_REFUSED", set())


def chat_for(server: FakeOpenAIServer) -> object:
    return make_chat("improver", RoleConfig(server.base_url, "imp", "k", 0.3, 256), timeout_s=5)


def test_the_schema_travels_with_the_request_beside_max_tokens() -> None:
    with FakeOpenAIServer(ScriptedResponder({"imp": [ADVICE]})) as server:
        reply = ask_for_advice(chat_for(server), PROMPT, seed=3, retries=0)
        (body,) = server.requests
    assert reply.text == ADVICE
    assert body["response_format"] == ADVICE_SCHEMA
    assert body["max_tokens"] == 256 and body["seed"] == 3


def test_a_server_that_refuses_the_schema_is_asked_again_without_it_and_remembered() -> None:
    responder = ScriptedResponder({"imp": [ADVICE]})
    with FakeOpenAIServer(responder, reject_response_format=True) as server:
        chat = chat_for(server)
        first = ask_for_advice(chat, PROMPT, seed=1, retries=3)
        second = ask_for_advice(chat, PROMPT, seed=2, retries=3)
        bodies = server.requests
    assert first.text == second.text == ADVICE
    # one refused try, its plain retry, then plain at once: not retried as if transient
    assert ["response_format" in b for b in bodies] == [True, False, False]


def test_other_refusals_are_not_mistaken_for_the_schema() -> None:
    with FakeOpenAIServer(ScriptedResponder({"imp": [ADVICE]}), faults=["400"]) as server:
        with pytest.raises(LLMUnavailable, match="refused the request"):
            ask_for_advice(chat_for(server), PROMPT, seed=1, retries=3)
        assert len(server.requests) == 1
