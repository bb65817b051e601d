"""Text in markdown that renders as the text it is: what a candidate (or an LLM) wrote, in a report.

A report is read in viewers that render markdown: an image in a failure message would be fetched
from its URL when the page opens, a link or raw HTML would be live, a `|` or a newline would break
the table it sits in. So text from a result goes in escaped: made inert (no control or invisible
characters), on one line, cut, and every character that starts markdown or HTML syntax escaped
with a backslash, which CommonMark and GitHub's renderer show as the character itself.
"""

from __future__ import annotations

import re

from sandbox.inert import inert

# ASCII punctuation that opens emphasis, links, images, HTML, code, tables, headings or
# autolinks (`:` in "https://", `.` in "www.").
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|!~&:.+\-=\"'$])")


def _one_line(text: object, limit: int) -> str:
    flat = " ".join(inert(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def md_text(text: object, limit: int) -> str:
    """`text` as one inert, escaped line of at most `limit` characters before escaping."""
    return _SPECIAL.sub(r"\\\1", _one_line(text, limit))


def md_code(text: object, limit: int) -> str:
    """`text` for the inside of a `code span`: inert, one line, no backtick to close it early."""
    return _one_line(text, limit).replace("`", "'")
