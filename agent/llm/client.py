"""The two LLM roles as plain chat completions against a local OpenAI-compatible server.

vLLM and llama.cpp's llama-server both speak the OpenAI chat API; ChatOpenAI talks to either.
Three things here are deliberate:

- A plain chat completion, no tool calls. The one extra a caller may add (`extra_body`) is
  the Improver's `response_format` JSON schema (`ADVICE_SCHEMA`), which falls back to plain text
  where a server rejects it. The nodes read code and JSON out of the text themselves.
- `max_tokens` travels in the request body. langchain-openai 1.7.4 renames its `max_tokens`
  setting to `max_completion_tokens` on the wire, which llama-cpp-python's server ignores (the
  reply then runs to the context's end); `extra_body` adds `max_tokens` back. vLLM and
  llama-server accept both fields.
- Retries are ours and bounded: the client's own are off, and only trouble that a second try can
  cure is retried (no connection, a dropped or stalled request, HTTP 5xx/408/429, a corrupt
  body). A request the server refuses (400, 404: wrong model, prompt too long) fails at once.
  Every give-up is an `LLMUnavailable` whose one-line message says which role, which URL, what
  happened and what to change.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from agent.settings import RoleConfig

__all__ = ["LLMUnavailable", "Reply", "ask", "make_chat", "preflight"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0  # the longest wait between two attempts
_RETRIED_STATUS = frozenset({408, 429})  # plus every 5xx
_REASON_CHARS = 240  # a server's message is cut to this in our one-line errors


class LLMUnavailable(RuntimeError):
    """An LLM role cannot answer; the message is one line: role, URL, reason and the fix."""


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int  # prompt + completion tokens as the server reported them; 0 if it did not
    model: str = ""  # the model id the server says answered ("" if it did not say)
    finish_reason: str = ""  # "stop", "length" (cut at max_tokens), ... ("" if not said)


def make_chat(role: str, cfg: RoleConfig, timeout_s: float) -> ChatOpenAI:
    """A ChatOpenAI for one role: no client-side retries, `max_tokens` in every request body."""
    _check_url(role, cfg.base_url)
    return ChatOpenAI(
        model=cfg.model,
        base_url=cfg.base_url,
        # an empty key would send the SDK looking for OPENAI_API_KEY; local servers take any
        api_key=SecretStr(cfg.api_key or "local"),
        temperature=cfg.temperature,
        max_completion_tokens=cfg.max_tokens,  # the `max_tokens` field, under its alias
        extra_body={"max_tokens": cfg.max_tokens},  # ...and as max_tokens, see the docstring
        timeout=timeout_s,
        max_retries=0,
        streaming=False,
        use_responses_api=False,  # /chat/completions, never /responses
        name=role,
    )


def ask(
    chat: BaseChatModel,
    messages: list[BaseMessage],
    *,
    role: str,
    seed: int | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
    extra_body: dict[str, Any] | None = None,
) -> Reply:
    """One chat completion, retried up to `retries` times on transient trouble.

    `chat` is normally make_chat's ChatOpenAI; any chat model works (tests pass scripted ones).

    `seed` goes into the request body (servers that honour it then sample reproducibly), and so
    do the fields of `extra_body`.
    Waits between attempts double from `backoff_s`, capped at MAX_BACKOFF_S. Raises
    LLMUnavailable when the server refuses the request or every attempt failed.
    """
    url = _url_of(chat)
    kwargs: dict[str, Any] = {} if seed is None else {"seed": seed}
    if extra_body:  # merged with the client's own (max_tokens), which a bare kwarg would replace
        kwargs["extra_body"] = {**(getattr(chat, "extra_body", None) or {}), **extra_body}

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s LLM at %s: attempt %d failed (%s); retrying in %.3g s",
            role,
            url,
            state.attempt_number,
            _reason(exc, chat) if exc else "?",
            wait,
        )

    retrying = Retrying(
        stop=stop_after_attempt(max(0, retries) + 1),
        wait=wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S),
        retry=retry_if_exception(_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        message = retrying(chat.invoke, messages, **kwargs)
    except Exception as exc:
        attempts = int(retrying.statistics.get("attempt_number", 1))
        error = _unavailable(exc, role, url, attempts, chat)
        if error is exc:
            raise
        raise error from exc
    usage = getattr(message, "usage_metadata", None) or {}
    meta = getattr(message, "response_metadata", None) or {}
    return Reply(
        text=text_of(message.content),
        tokens=int(usage.get("total_tokens") or 0),
        model=str(meta.get("model_name") or meta.get("model") or ""),
        finish_reason=str(meta.get("finish_reason") or ""),
    )


def preflight(role: str, cfg: RoleConfig, timeout_s: float = 5.0) -> None:
    """Check that the role's server answers `GET {base_url}/models`; LLMUnavailable if not.

    Cheap and side-effect free, so a run can be refused before anything is written. The model
    name is not checked against the list: llama-server answers to any name.
    """
    _check_url(role, cfg.base_url)
    base = cfg.base_url.rstrip("/")
    env = f"NASLOOP_{role.upper()}"
    headers = {"Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    try:
        request = urllib.request.Request(f"{base}/models", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        detail = _one_line(_server_message(exc.read(4096)) or exc.reason or "")
        fix = {
            401: f"check {env}_API_KEY",
            403: f"check {env}_API_KEY",
            404: f"check {env}_BASE_URL (it usually ends in /v1)",
            503: "the server may still be loading its model: wait, then try again",
        }.get(exc.code, f"check the server or {env}_BASE_URL")
        raise LLMUnavailable(
            f"the {role} LLM at {base} answered GET /models with HTTP {exc.code} ({detail}): {fix}"
        ) from None
    except (ValueError, http.client.InvalidURL) as exc:  # what _check_url did not foresee
        raise _bad_url(role, cfg.base_url, str(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        timed_out = isinstance(exc, TimeoutError) or isinstance(
            getattr(exc, "reason", None), TimeoutError
        )
        reason = f"no answer in {timeout_s:g} s" if timed_out else _os_reason(exc) or str(exc)
        raise LLMUnavailable(
            f"cannot reach the {role} LLM at {base} ({reason}): start a server "
            f"(see README, 'LLM servers') or set {env}_BASE_URL"
        ) from None
    try:
        json.loads(body)
    except ValueError:
        raise LLMUnavailable(
            f"the {role} LLM at {base} answered GET /models with something that is not JSON "
            f"({_one_line(body[:80].decode(errors='replace'))!r}): is this an OpenAI-compatible "
            f"server? check {env}_BASE_URL (it usually ends in /v1)"
        ) from None


# -- helpers -------------------------------------------------------------------------------------


def _check_url(role: str, url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad_url(role, url, "not an http(s) URL")
    try:
        parts.port  # noqa: B018 -- parsing it is the check
    except ValueError as exc:
        raise _bad_url(role, url, str(exc)) from None


def _bad_url(role: str, url: str, why: str) -> LLMUnavailable:
    return LLMUnavailable(
        f"NASLOOP_{role.upper()}_BASE_URL={url!r} is not usable for the {role} LLM "
        f"({_one_line(why)}): set it to the server's OpenAI-compatible base URL, "
        "e.g. http://127.0.0.1:8080/v1"
    )


def _transient(exc: BaseException) -> bool:
    """Whether a second attempt might succeed."""
    if isinstance(exc, openai.APIConnectionError):  # refused, reset, dropped, timed out
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in _RETRIED_STATUS
    # a 200 whose body is not JSON: cut off or mangled on the way
    return isinstance(exc, json.JSONDecodeError)


def _unavailable(
    exc: Exception, role: str, url: str, attempts: int, chat: BaseChatModel
) -> Exception:
    """The LLMUnavailable for `exc`, or `exc` itself when it is not the server's doing."""
    env = f"NASLOOP_{role.upper()}"
    reason = _reason(exc, chat)
    if _transient(exc):
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        return LLMUnavailable(
            f"{role} LLM at {url} failed after {tries} ({reason}): "
            f"check the server or {env}_BASE_URL"
        )
    if isinstance(exc, openai.APIStatusError):
        fix = {
            401: f"check {env}_API_KEY",
            403: f"check {env}_API_KEY",
            404: f"check {env}_MODEL (GET {url}/models lists the server's) and {env}_BASE_URL",
        }.get(
            exc.status_code,
            f"check {env}_MODEL, and that the prompt plus {env}_MAX_TOKENS fits the server's "
            "context",
        )
        return LLMUnavailable(f"{role} LLM at {url} refused the request ({reason}): {fix}")
    if isinstance(exc, openai.APIError) or _not_an_api_reply(exc):
        return LLMUnavailable(
            f"{role} LLM at {url} did not answer like an OpenAI-compatible server ({reason}): "
            f"check {env}_BASE_URL (it usually ends in /v1)"
        )
    return exc  # ours, not the server's: let it surface with its traceback


def _not_an_api_reply(exc: BaseException) -> bool:
    """langchain-openai's ValueError for a 200 that is not JSON (an HTML page, plain text): the
    URL leads to a web server that is not an LLM server."""
    return isinstance(exc, ValueError) and "Unexpected response type" in str(exc)


def _reason(exc: BaseException, chat: BaseChatModel) -> str:
    """A short, one-line account of what went wrong."""
    if isinstance(exc, openai.APITimeoutError):
        timeout = getattr(chat, "request_timeout", None)
        return f"no answer in {timeout:g} s" if isinstance(timeout, int | float) else "timed out"
    if isinstance(exc, openai.APIConnectionError):
        return _os_reason(exc) or _one_line(str(exc))
    if isinstance(exc, openai.APIStatusError):
        detail = _server_message(exc.body) or _server_message(exc.response.content)
        return f"HTTP {exc.status_code}: {_one_line(detail or exc.message)}"
    if isinstance(exc, json.JSONDecodeError):
        return f"the reply is not JSON: {exc.msg}"
    if _not_an_api_reply(exc):
        preview = str(exc).partition("got ")[2] or str(exc)
        return f"a reply that is not JSON: {_one_line(preview)}"
    return _one_line(f"{type(exc).__name__}: {exc}")


def _os_reason(exc: BaseException) -> str | None:
    """The innermost OS-level cause (`Connection refused`), or the HTTP library's own words for a
    dropped connection (`Server disconnected without sending a response.`)."""
    seen: set[int] = set()
    found: str | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, urllib.error.URLError) and isinstance(current.reason, OSError):
            current = current.reason
            continue
        if not isinstance(current, openai.APIError) and str(current):
            found = found or _one_line(str(current))
        current = current.__cause__ or current.__context__
    return found


def _server_message(body: object) -> str | None:
    """The `message` of an OpenAI-style error body (`{"error": {"message": ...}}`), or its text."""
    if isinstance(body, bytes):
        raw = body
        try:
            body = json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace").strip() or None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
        return json.dumps(body)
    return str(body) if body else None


def _one_line(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def text_of(content: str | list[str | dict[Any, Any]]) -> str:
    """A message's text: the string, or its text parts joined (reasoning parts left out)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def _url_of(chat: BaseChatModel) -> str:
    return str(getattr(chat, "openai_api_base", None) or f"<{type(chat).__name__}>").rstrip("/")
