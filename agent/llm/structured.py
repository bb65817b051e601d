"""The Improver's reply constrained to a JSON schema, where the server supports it.

llama.cpp's and vLLM's OpenAI servers accept `response_format: {"type": "json_schema", ...}` and
then sample only replies that parse: no prose around the object, no window lines copied into it
(the advice hygiene, `clean_advice`, still runs). A server that refuses the field (HTTP 400 naming
it) is asked once more without it, and is not asked with it again in this process: the run then
lives on the tolerant reader, `parse_improvement`, as before.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from agent.llm.client import LLMUnavailable, Reply, ask

ADVICE_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "advice",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "problem": {"type": "string"},
                "suggestion": {"type": "string"},
            },
            "required": ["problem", "suggestion"],
            "additionalProperties": False,
        },
    },
}
_REFUSED: set[str] = set()  # servers (base URLs) that rejected response_format in this process


def refused_schema(exc: LLMUnavailable) -> bool:
    """Whether the server refused the request because of the schema field itself."""
    text = str(exc).lower()
    return "refused the request" in text and ("response_format" in text or "json_schema" in text)


def ask_for_advice(
    chat: Any, messages: list[BaseMessage], *, seed: int | None, retries: int
) -> Reply:
    """The Improver's reply: schema-constrained when the server takes it, plain text otherwise."""
    url = str(getattr(chat, "openai_api_base", None) or "")
    if url not in _REFUSED:
        try:
            return ask(
                chat,
                messages,
                role="improver",
                seed=seed,
                retries=retries,
                extra_body={"response_format": ADVICE_SCHEMA},
            )
        except LLMUnavailable as exc:
            if not refused_schema(exc):
                raise
            _REFUSED.add(url)
    return ask(chat, messages, role="improver", seed=seed, retries=retries)
