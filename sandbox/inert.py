"""Candidate text made inert: the one place where words a candidate controls enter the host's world.

A candidate chooses its exception messages, its traceback and everything it prints. Passed on as
they are, those words reach a terminal (an escape sequence can retitle the window, clear the
screen, write the clipboard or hide text), a report (a bidirectional override reorders what the
reader sees) and an LLM's prompt. So every text of a result goes through `inert` when the result
is made: C0/C1 controls other than newline and tab, Unicode format characters (bidi overrides
and isolates, zero-width joiners, the BOM), line and paragraph separators and private-use or
surrogate code points are shown escaped (`\\x1b`, `\\u202e`), and the length is bounded. What
comes out is plain text; what it *means* to a markdown viewer or an LLM is each reader's business
(the report escapes markdown, the prompts fence it as untrusted).
"""

from __future__ import annotations

import unicodedata

# Unicode categories shown escaped: controls, format characters (bidi, zero-width), private
# use, surrogates, unassigned, and the two separators that break lines where newline does not.
ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
KEPT = frozenset("\n\t")
CUT_MARK = " [... cut]"


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def inert(text: object, limit: int | None = None, keep_tail: bool = False) -> str:
    """`text` as plain, visible characters, cut to `limit` characters before escaping (None: no
    cut; `keep_tail`: keep the end, as a traceback's last lines say the most)."""
    raw = text if isinstance(text, str) else str(text)
    cut = limit is not None and len(raw) > limit
    if limit is not None and cut:  # cut first: escaping then grows it at most tenfold
        room = max(limit - len(CUT_MARK), 0)  # the mark counts within the limit
        raw = raw[len(raw) - room :] if keep_tail else raw[:room]
    out = "".join(
        _escaped(c) if c not in KEPT and unicodedata.category(c) in ESCAPED_CATEGORIES else c
        for c in raw
    )
    if not cut:
        return out
    return CUT_MARK.strip() + " " + out if keep_tail else out + CUT_MARK


def is_inert(text: str) -> bool:
    """Whether `text` holds no character `inert` would escape."""
    return not any(c not in KEPT and unicodedata.category(c) in ESCAPED_CATEGORIES for c in text)
