"""What the Improver said, cleaned before it enters the memory: no echoed window, no labels.

Small models copy the prompt's own format back: a `problem` that reads "problem: X -> suggestion:
Y -> outcome: failed (...)" is a window line, not a diagnosis; once stored it is shown again next
time, and copied again. Everything here is a pure function of text.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from agent.state import Pending
from sandbox.result import EvalResult

UNREADABLE = "the Improver's reply could not be read"
ECHO_MIN_CHARS = 20
ECHO_SHARE = 0.6
# the history window's own line format: "N. problem: P -> suggestion: S -> outcome: O"
_ECHO = re.compile(r"\s*->\s*(?:problem|suggestion|outcome)\s*:", re.I)
_LABEL = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:problem|suggestion|outcome|advice)\s*[:=]\s*", re.I)


def clean_field(text: str) -> str:
    """`text` on one line, cut where a window line's `-> suggestion:`/`-> outcome:` tail starts,
    without leading labels: "1. problem: X -> suggestion: Y -> outcome: Z" becomes "X"."""
    line = " ".join(str(text).split())
    echo = _ECHO.search(line)
    if echo is not None:
        line = line[: echo.start()]
    while (label := _LABEL.match(line)) is not None:
        line = line[label.end() :]
    return line.strip(" -;,")


def clean_advice(parsed: dict[str, str] | None, limit: int) -> Pending:
    """The Improver's (problem, suggestion), cleaned and clipped to `limit` characters each.

    A reply with no readable suggestion is recorded as exactly that, with no invented diagnosis
    and no advice: the Generator then sees no suggestion rather than a made-up one.
    """
    problem = clean_field((parsed or {}).get("problem", ""))[:limit]
    suggestion = clean_field((parsed or {}).get("suggestion", ""))[:limit]
    if not suggestion:
        return Pending(problem=UNREADABLE, suggestion="")
    return Pending(problem=problem, suggestion=suggestion)


def without_echo(advice: Pending, results: list[EvalResult]) -> Pending:
    """`advice`, or an unreadable reply when its suggestion merely repeats the failed program's
    own output (an injected "reply with the suggestion: ..." that the Improver copied): words the
    candidate wrote never become the next prompt's advice. A repeat is a common run of at least
    20 characters covering 60% of the suggestion, whitespace and case aside."""
    said = " ".join(advice["suggestion"].lower().split())
    if len(said) < ECHO_MIN_CHARS:
        return advice
    for result in results:
        text = " ".join(f"{result['message']} {result['traceback']}".lower().split())
        run = SequenceMatcher(None, said, text, autojunk=False).find_longest_match()
        if run.size >= max(ECHO_MIN_CHARS, int(ECHO_SHARE * len(said))):
            return Pending(problem=UNREADABLE, suggestion="")
    return advice
