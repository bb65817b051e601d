"""Fixtures shared by the unit tests (helpers they share live in tests/helpers)."""

from __future__ import annotations

import pytest

import agent.nodes as nodes
from tests.helpers.graph import (
    RecordingChat,
    ScriptedEvaluator,
    generator_reply,
    improver_reply,
    use_evaluator,
)


@pytest.fixture
def roles(monkeypatch: pytest.MonkeyPatch) -> dict[str, RecordingChat]:
    n = 60
    chats = {
        "generator": RecordingChat(responses=[generator_reply(i) for i in range(n)], prompts=[]),
        "improver": RecordingChat(responses=[improver_reply(i) for i in range(n)], prompts=[]),
    }
    monkeypatch.setattr(nodes, "chat_for", lambda role, settings: chats[role])
    use_evaluator(monkeypatch, ScriptedEvaluator())
    return chats
