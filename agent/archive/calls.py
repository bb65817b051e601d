"""Every LLM call of a run, archived the moment it returns: what was sent, what came back, what
was read from it.

The `calls` table lives in the run's `archive.sqlite` beside the candidates, one row per call
keyed by (iteration, attempt, role): an attempt is one program tried within an iteration (0 the
first ask, then re-asks and repairs), and the Improver's call belongs to the iteration whose
result it read. A node re-run after a crash makes the same call again and overwrites its row, so
a resumed run never holds two rows for one call. Texts are cut at `TEXT_LIMIT` bytes each and
stored zlib-compressed, so one chatty model cannot bloat the archive; nothing here is carried in
graph state.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any, TypedDict

from langchain_core.messages import BaseMessage

from agent.archive.paths import ArchiveTables
from agent.llm.client import Reply, text_of

TEXT_LIMIT = 64 * 1024  # bytes of one text (a message, the reply, the extracted code)

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    role TEXT NOT NULL,
    model TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    messages BLOB NOT NULL,
    reply BLOB NOT NULL,
    extracted BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (iteration, attempt, role)
);
"""


class Extracted(TypedDict, total=False):
    """What the reader made of a reply: exactly one of code, advice, or why there is none."""

    code: str
    problem: str
    suggestion: str
    none: str  # why nothing usable could be read


class Call(TypedDict):
    iteration: int
    attempt: int
    role: str
    model: str
    tokens: int
    seconds: float
    finish_reason: str
    messages: list[dict[str, str]]  # [{"role": "system" | "human" | ..., "content": text}]
    reply: str
    extracted: Extracted
    created: float


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, saying how much was cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    kept = data[: limit - 64].decode("utf-8", errors="ignore")
    return f"{kept}\n… [cut: {len(data) - len(kept.encode())} more bytes]"


def _pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value).encode("utf-8"), 6)


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob).decode("utf-8"))


def plain_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": m.type, "content": clip(text_of(m.content))} for m in messages]


def why_no_code(reply: Reply) -> str:
    """Why the Generator's reply gave no code, in words a user can act on."""
    if not reply.text.strip():
        return "the reply was empty"
    if reply.finish_reason == "length":
        return "the reply was cut at max_tokens before any complete code block"
    return "the reply contained no Python code block"


class CallLog(ArchiveTables):
    """The `calls` table of one run's archive."""

    schema = SCHEMA

    def record(
        self,
        *,
        iteration: int,
        attempt: int,
        role: str,
        messages: Sequence[BaseMessage],
        reply: Reply,
        seconds: float,
        extracted: Extracted,
    ) -> None:
        bounded = {k: clip(str(v)) for k, v in extracted.items()}
        row = (
            iteration,
            attempt,
            role,
            reply.model,
            reply.tokens,
            seconds,
            reply.finish_reason,
            _pack(plain_messages(messages)),
            _pack(clip(reply.text)),
            _pack(bounded),
            time.time(),
        )
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO calls (iteration, attempt, role, model, tokens, seconds,"
                " finish_reason, messages, reply, extracted, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )

    def calls(self, iteration: int | None = None) -> list[Call]:
        """The archived calls (of one iteration), in iteration, attempt, then role order
        (the Generator's before the Improver's)."""
        where, args = ("WHERE iteration=?", (iteration,)) if iteration is not None else ("", ())
        with self._connect() as db:
            rows = list(
                db.execute(
                    f"SELECT * FROM calls {where} ORDER BY iteration, attempt, role",
                    args,
                )
            )
        return [
            Call(
                iteration=r["iteration"],
                attempt=r["attempt"],
                role=r["role"],
                model=r["model"],
                tokens=r["tokens"],
                seconds=r["seconds"],
                finish_reason=r["finish_reason"],
                messages=_unpack(r["messages"]),
                reply=_unpack(r["reply"]),
                extracted=_unpack(r["extracted"]),
                created=r["created"],
            )
            for r in rows
        ]
