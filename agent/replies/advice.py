"""Read the Improver's advice from what a small LLM wrote: a `{problem, suggestion}` pair.

Small local models put JSON in ```json fences with chatter around it, use single quotes, trailing
commas, other key names, or plain labelled lines ("Problem: ... Suggestion: ..."); a reply that
only picks a menu move by number (`{"move": 2}`) reads as the suggestion "move 2". The reader is
a total function (`parse_improvement`): any text in, a pair or None out, never an exception.
Nothing is ever executed. (The Generator's code has its own reader, `extract_code`.)
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["parse_improvement"]

# Above this, the text is cut before any parsing (as the Generator's code reader does)
_MAX_TEXT = 200_000

# What small models call each field: exact keys, then key parts. The lists for the two fields read
# alike on purpose (one vocabulary per field), they are data, not repeated logic.
_PROBLEM_KEYS = ("problem", "diagnosis", "issue", "issues", "problems", "error", "cause")
_SUGGESTION_KEYS = (
    "suggestion",
    "suggestions",
    "fix",
    "fixes",
    "improvement",
    "improvements",
    "recommendation",
    "recommendations",
    "change",
    "changes",
    "modification",
    "solution",
)
_MOVE_KEYS = ("move", "move_number", "option", "choice")  # a menu move picked by number
_PROBLEM_PARTS = ("problem", "diagnos", "issue", "error", "cause", "analysis", "observation")
_SUGGESTION_PARTS = (
    "suggest",
    "fix",
    "improv",
    "recommend",
    "change",
    "modif",
    "solution",
    "action",
)
_MAX_SPANS = 200
_MAX_SPAN_CHARS = 50_000
_SPAN_BUDGET = 300_000  # characters of candidate objects loaded per reply, all tries together
_PLACEHOLDER = re.compile(
    r"^(?:<[^<>]{0,80}>|\.{2,}|\u2026|\[[^\[\]]{0,80}\]|n/?a|none|null|tbd)$", re.I
)
_JSON_FENCE = re.compile(
    r"(?:```|~~~)[ \t]*(?:json5?|javascript|js)?[ \t]*\n(.*?)(?:```|~~~|$)", re.S
)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_LABEL = re.compile(
    r"^[\s>*#_`\-\d.)(\[]{0,12}[\"']?(?P<key>[A-Za-z][A-Za-z _-]{1,30}?)[\"']?[*_`\s]{0,4}"
    r"[:=\-\u2013\u2014][*_`\s]{0,4}(?P<value>.*)$"
)


def _norm_key(key: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def _as_text(value: Any) -> str:
    """A string from a value the model put there: lists joined, dicts' values joined."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        text = value.strip().strip(",").strip()
        return "" if _PLACEHOLDER.match(text) else text
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return _join([_as_text(v) for v in value.values()])
    if isinstance(value, list | tuple):
        return _join([_as_text(v) for v in value])
    return ""


def _join(items: Iterable[str]) -> str:
    parts = [p for p in (i.strip() for i in items) if p]
    if all(p[-1] in ".!?;" for p in parts):
        return " ".join(parts)
    return "; ".join(p.rstrip(";") for p in parts)


def _pick(data: dict[str, Any], exact: tuple[str, ...], parts: tuple[str, ...]) -> str:
    keys = {_norm_key(k): v for k, v in data.items()}
    for name in exact:
        if name in keys and (text := _as_text(keys[name])):
            return text
    for key, value in keys.items():
        if any(p in key for p in parts) and (text := _as_text(value)):
            return text
    return ""


def _from_mapping(data: Any, depth: int = 0) -> dict[str, str] | None:
    if isinstance(data, list) and depth < 3:
        for item in data:
            found = _from_mapping(item, depth + 1)
            if found:
                return found
        return None
    if not isinstance(data, dict):
        return None
    suggestion = _pick(data, _SUGGESTION_KEYS, _SUGGESTION_PARTS) or _move(data)
    if suggestion:
        return {"problem": _pick(data, _PROBLEM_KEYS, _PROBLEM_PARTS), "suggestion": suggestion}
    if depth < 3:  # {"analysis": {"problem": ..., "suggestion": ...}}
        for value in data.values():
            found = _from_mapping(value, depth + 1)
            if found:
                return found
    return None


def _move(data: dict[str, Any]) -> str:
    """ "move N" for a reply that picked a menu move by number only ({"move": 2}): the host
    reads it against the menu it showed (agent/replies/advice_moves.py)."""
    for key, value in data.items():
        if _norm_key(key) in _MOVE_KEYS and not isinstance(value, bool):
            number = str(value).strip().lstrip("#")
            if isinstance(value, int | str) and number.isdigit() and 0 < int(number) < 100:
                return f"move {int(number)}"
    return ""


_WORD = re.compile(r"[A-Za-z_]\w*")
_KEY_COLON = re.compile(r"\s*:")
_SQ_END = re.compile(r"'\s*(?:[,}\]:]|$)")


def _requote(span: str) -> str:
    """Single-quoted strings to JSON strings, Python literals to JSON, bare keys quoted.

    A single-quoted string ends at a quote followed by `,` `}` `]` `:` or the end, so apostrophes
    inside words ("the net's head") survive.
    """
    out: list[str] = []
    i, n = 0, len(span)
    while i < n:
        ch = span[i]
        if ch == '"':
            j = i + 1
            while j < n and span[j] != '"':
                j += 2 if span[j] == "\\" else 1
            out.append(span[i : j + 1])
            i = j + 1
        elif ch == "'":
            j = i + 1
            while j < n:
                if span[j] == "\\":
                    j += 2
                    continue
                if span[j] == "'" and _SQ_END.match(span, j):
                    break
                j += 1
            out.append(json.dumps(span[i + 1 : j].replace("\\'", "'")))
            i = j + 1
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(span, i)
            word = m.group(0) if m else ch
            i += len(word)
            if _KEY_COLON.match(span, i):
                out.append(json.dumps(word))
            else:
                out.append({"True": "true", "False": "false", "None": "null"}.get(word, word))
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _literal(text: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.literal_eval(text)


def _load_object(span: str) -> Any:
    """Try strict JSON, then a careful repair, then a Python literal; None when all fail."""
    fixed = (
        span.replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2018", "'")
        .replace("\u2019", "'")
    )
    attempts: tuple[Callable[[], Any], ...] = (
        lambda: json.loads(span, strict=False),
        lambda: json.loads(_TRAILING_COMMA.sub(r"\1", fixed), strict=False),
        lambda: json.loads(_TRAILING_COMMA.sub(r"\1", _requote(fixed)), strict=False),
        lambda: _literal(fixed),
    )
    for attempt in attempts:
        try:
            return attempt()
        except Exception:  # every failure means "try the next way"
            continue
    return None


def _brace_spans(text: str, track_strings: bool) -> list[tuple[int, int]]:
    """Balanced {...} spans in one linear pass, in order of their opening brace."""
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    in_string = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"' and track_strings and stack:
            in_string = True
        elif ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            spans.append((stack.pop(), i + 1))
        i += 1
    return sorted(spans)


def _from_json(text: str) -> dict[str, str] | None:
    chunks = [m.group(1) for m in _JSON_FENCE.finditer(text)] + [text]
    seen: set[tuple[int, int, int]] = set()
    tried, budget = 0, _SPAN_BUDGET
    for c, chunk in enumerate(chunks):
        for track in (True, False):
            for start, end in _brace_spans(chunk, track):
                span = chunk[start:end]
                if (c, start, end) in seen or len(span) > _MAX_SPAN_CHARS or ":" not in span:
                    continue
                seen.add((c, start, end))
                tried += 1
                budget -= len(span)
                if tried > _MAX_SPANS or budget < 0:
                    return None
                found = _from_mapping(_load_object(span))
                if found:
                    return found
    return None


def _label_kind(key: str) -> str | None:
    key = _norm_key(key)
    if key in _SUGGESTION_KEYS or any(p in key for p in _SUGGESTION_PARTS):
        return "suggestion"
    if key in _PROBLEM_KEYS or any(p in key for p in _PROBLEM_PARTS):
        return "problem"
    return None


_LIST_MARKER = re.compile(r"^(?:[-*\u2022]|\d{1,3}[.)])\s+")


def _clean_part(part: str) -> str:
    part = _LIST_MARKER.sub("", part.strip().strip("*_`").strip())
    return part.rstrip(",").strip().strip("\"'").strip()


def _from_lines(text: str) -> dict[str, str] | None:
    """'Problem: ...' / 'Suggestion: ...' lines; a value may continue on the following lines."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.split("\n")[:5000]:
        line = raw.strip()
        label = _LABEL.match(line[:2000]) if line else None
        kind = _label_kind(label.group("key")) if label else None
        if label is not None and kind is not None:
            current = kind if kind not in found else None  # the first of each wins
            if current is not None:
                found[current] = [label.group("value")]
            continue
        if not line:
            if current is not None and any(_clean_part(p) for p in found[current]):
                current = None
            continue
        if current is not None:
            found[current].append(line)
    values = {k: _as_text([_clean_part(p) for p in parts]) for k, parts in found.items()}
    if not values.get("suggestion"):
        return None
    return {"problem": values.get("problem", ""), "suggestion": values["suggestion"]}


def parse_improvement(text: str) -> dict[str, str] | None:
    """The Improver's {"problem", "suggestion"} from a reply, or None when nothing usable is there.

    A JSON object anywhere in the text (fenced or not, strict or repaired, or a Python dict
    literal), under our key names or close ones; else labelled plain-text lines. A reply without
    a suggestion is not usable; a missing problem becomes "".
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return None
        text = text[:_MAX_TEXT].replace("\r\n", "\n").replace("\r", "\n")
        if "</think>" in text:
            answer = text.rsplit("</think>", 1)[1]
            found = _from_json(answer) or _from_lines(answer)
            if found:
                return found
        return _from_json(text) or _from_lines(text)
    except Exception:  # a reader of untrusted text must never take the search down
        return None
