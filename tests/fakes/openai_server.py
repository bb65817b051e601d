"""A real HTTP server that speaks enough of the OpenAI chat API for nasloop's tests.

It listens on 127.0.0.1, answers `GET /v1/models` and `POST /v1/chat/completions` (plain JSON or
server-sent events when `stream` is true), and lets a test choose every reply and inject faults.
Clients talk to it exactly as they would to vLLM or llama.cpp's llama-server, so the real
ChatOpenAI, openai SDK and HTTP stack are exercised end to end.

    with FakeOpenAIServer(ScriptedResponder({"fake-generator": ["hello"]})) as server:
        chat = ChatOpenAI(base_url=server.base_url, model="fake-generator", api_key="x")
        server.requests  # the JSON bodies received so far

As a separate process (for subprocess tests):

    python -m tests.fakes.openai_server --port 0 --replies FILE.json [--faults 500,none,close]
        [--reply-delay SECONDS]
    python -m tests.fakes.openai_server --port 0 --persona mistakes   (tests/fakes/mistakes.py)

prints `READY http://127.0.0.1:PORT/v1` once listening, then serves until killed.

Token counts are rough (about four characters per token), like the truncation that honours
`max_tokens`. Only `max_tokens` is honoured, not `max_completion_tokens`: that is what
llama-cpp-python's server does, and it lets a test prove that the client sends `max_tokens`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

Responder = Callable[[dict[str, Any]], str]
"""Chooses the reply text for one chat request (the decoded JSON body)."""

Fault = str | None
"""`None` (answer normally), an HTTP status such as "500", "429" or "404" (answer with that
status and an OpenAI-style error body), "close" (drop the connection without answering),
"stall:SECONDS" (wait, then answer normally), "garbage" (200, declared JSON, body is not JSON) or
"html" (200 with an HTML page, as from a web server that is not an LLM server)."""

CHARS_PER_TOKEN = 4
DEFAULT_MODELS = ("fake-generator", "fake-improver")
_STATUS_FAULT = re.compile(r"[45]\d\d")
_STALL_FAULT = re.compile(r"stall:(\d+(?:\.\d*)?)")


class UnknownModel(LookupError):
    """Raised by a responder for a model it has no script for: the server answers 404."""


class ScriptedResponder:
    """Replies from per-model scripts: each model's list in order, starting again at the end."""

    def __init__(self, replies: Mapping[str, Sequence[str]]) -> None:
        empty = [name for name, script in replies.items() if not script]
        if empty:
            raise ValueError(f"empty script for model(s) {', '.join(empty)}")
        self.models = list(replies)
        self._cycles: dict[str, Iterator[str]] = {
            name: itertools.cycle(list(script)) for name, script in replies.items()
        }
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedResponder:
        """Load `{"model-name": ["reply", ...], ...}` from a JSON file."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
        ):
            raise ValueError(f"{path}: expected {{model name: [reply, ...]}}")
        return cls(data)

    def __call__(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        with self._lock:
            cycle = self._cycles.get(str(model))
            if cycle is None:
                raise UnknownModel(
                    f"The model `{model}` does not exist. Known: {', '.join(self.models)}"
                )
            return next(cycle)


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def check_fault(fault: Fault) -> Fault:
    """Return `fault` when it is one the server understands, else raise ValueError."""
    if fault is None or fault in ("close", "garbage", "html"):
        return fault
    if _STATUS_FAULT.fullmatch(fault) or _STALL_FAULT.fullmatch(fault):
        return fault
    raise ValueError(
        f"unknown fault {fault!r}: use None, a 4xx/5xx code, close, stall:S, garbage or html"
    )


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 (a free port unless `port` is given).

    `faults` are consumed one per request, every request counts (`GET /models` included);
    when they run out the server answers normally. `requests` holds the JSON body of every
    POST received, faulted ones too, so a test can count attempts.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        faults: Iterable[Fault] = (),
        port: int = 0,
        models: Sequence[str] | None = None,
        reply_delay: float = 0.0,
        reject_response_format: bool = False,
    ) -> None:
        # answer a request that carries `response_format` with HTTP 400, as servers without
        # structured output do (the client must then fall back to plain text)
        self.reject_response_format = reject_response_format
        self.responder: Responder = responder or ScriptedResponder(
            {m: ["OK"] for m in DEFAULT_MODELS}
        )
        known: Sequence[str] = getattr(self.responder, "models", DEFAULT_MODELS)
        self.models = list(models or known)
        self._faults = [check_fault(f) for f in faults]
        # seconds before each completion, as a real model takes to write one: tests that kill a
        # run mid-way need the loop to last, however fast the sandbox gets
        self.reply_delay = reply_delay
        self._requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the JSON bodies received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def add_faults(self, *faults: Fault) -> None:
        """Queue more faults behind the ones not yet consumed."""
        checked = [check_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(checked)

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def close(self) -> None:
        self._closing.set()  # wakes stalled handlers
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- used by the handler ---------------------------------------------------------------------

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(body)


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if not self._apply_fault():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, f"no route GET {self.path}")
            return
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "fake"}
            for m in self.fake.models
        ]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._error(400, f"request body is not JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._error(400, "request body must be a JSON object")
            return
        self.fake._record(body)
        if not self._apply_fault():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route POST {self.path}")
            return
        if self.fake.reject_response_format and "response_format" in body:
            self._error(400, "Unrecognized request argument supplied: response_format")
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "'messages' must be a non-empty list")
            return
        if not self._write_for_a_while():
            return
        try:
            text = self.fake.responder(body)
        except UnknownModel as exc:
            self._error(404, str(exc), kind="NotFoundError")
            return
        except Exception as exc:
            self._error(500, f"responder failed: {exc!r}", kind="InternalServerError")
            return
        self._complete(body, messages, text)

    def _write_for_a_while(self) -> bool:
        """Spend the reply delay as a model writing; False if the client hung up meanwhile (or
        the server closes). A reply nobody waited for is not taken from the script, so a run
        killed mid-call and resumed gets the reply the dead process never saw."""
        deadline = time.monotonic() + self.fake.reply_delay
        while (left := deadline - time.monotonic()) > 0:
            if self.fake._closing.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return False  # end of stream: the client is gone
                return not self.fake._closing.wait(left)  # it sent more: just wait
        return True

    # -- replies ---------------------------------------------------------------------------------

    def _apply_fault(self) -> bool:
        """Act out the next fault; True when the request should then be answered normally."""
        fault = self.fake._next_fault()
        if fault is None:
            return True
        if fault == "close":
            self.close_connection = True
            return False
        if fault == "garbage":
            self._send(200, b"<html>502 upstream hiccup</html>\n{not json", "application/json")
            return False
        if fault == "html":
            page = b"<!doctype html><html><body><h1>It works!</h1></body></html>\n"
            self._send(200, page, "text/html; charset=utf-8")
            return False
        stall = _STALL_FAULT.fullmatch(fault)
        if stall:
            self.fake._closing.wait(float(stall.group(1)))
            return True
        status = int(fault)
        kind = "RateLimitError" if status == 429 else "FaultInjected"
        self._error(status, f"injected fault: HTTP {status}", kind=kind)
        return False

    def _complete(self, body: dict[str, Any], messages: list[Any], text: str) -> None:
        limit = body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit >= 0 and approx_tokens(text) > limit:
            text = text[: limit * CHARS_PER_TOKEN]
            finish = "length"
        prompt_text = "".join(_content_text(m) for m in messages if isinstance(m, dict))
        usage = {
            "prompt_tokens": approx_tokens(prompt_text),
            "completion_tokens": approx_tokens(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": str(body.get("model", "")),
            "system_fingerprint": "fake",
        }
        if body.get("stream"):
            options = body.get("stream_options") or {}
            self._stream(head, text, finish, usage if options.get("include_usage") else None)
            return
        self._json(
            200,
            {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self, head: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.close_connection = True  # HTTP/1.0: the end of the body is the end of the stream

        def chunk(delta: dict[str, Any], reason: str | None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": text[i : i + 16]}, None) for i in range(0, len(text), 16)]
        events.append(chunk({}, finish))
        if usage is not None:
            events.append(
                {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        try:
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except OSError:  # the client gave up (timeout): nothing to do
            pass

    def _error(self, status: int, message: str, *, kind: str = "BadRequestError") -> None:
        self._json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
        )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout): nothing to do
            pass


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openai_server", description=__doc__
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--replies", help='JSON file {"model": ["reply", ...]}')
    source.add_argument(
        "--persona",
        choices=["mistakes"],
        help="mistakes: replies like a real 0.5B model's (tests/fakes/mistakes.py)",
    )
    parser.add_argument(
        "--faults", default="", help="comma-separated, one per request: none,500,429,close,..."
    )
    parser.add_argument(
        "--reply-delay", type=float, default=0.0, help="seconds before each completion"
    )
    args = parser.parse_args(argv)
    faults = (
        [None if f in ("", "none") else f for f in args.faults.split(",")] if args.faults else []
    )
    responder: Responder
    if args.persona == "mistakes":
        from tests.fakes.mistakes import MistakesResponder

        responder = MistakesResponder()
    else:
        responder = ScriptedResponder.from_file(args.replies)
    server = FakeOpenAIServer(
        responder,
        faults=faults,
        port=args.port,
        reply_delay=args.reply_delay,
    )
    print(f"READY {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
