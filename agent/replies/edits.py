"""Read the Generator's edit blocks and apply them, on the host, to the code it was shown.

`--edit-mode diff|auto` asks the Generator to change the code it was shown (the best network when
improving; the failing module when a fix is asked) instead of writing it all again. The format is
one or more blocks of three marker lines:

    <<<<<<< SEARCH
    lines copied from the code shown
    =======
    the lines that take their place
    >>>>>>> REPLACE

How a reply is read (`code_from_reply`):

- mode `full`: the reply is a whole module (agent/replies/code.py), today's protocol.
- mode `diff`: the reply must hold blocks; a reply without any is a `bad_edit` (the benchmark
  then measures whether the model follows the format; `auto` is the forgiving variant).
- mode `auto`: blocks if the reply has any marker line, else a whole module.
- No code shown (the first iteration, or nothing trained yet): a whole module in every mode; blocks
  in such a reply are a `bad_edit`, since there is nothing they could apply to.

What is tolerated, because small models do it: fences around or inside blocks, text before,
between and after them (an "example usage" tail is ignored), CRLF, 5 to 9 marker characters,
trailing whitespace, blank lines at either end of a part. One whitespace rule goes further, and
only when the exact text is found nowhere: a SEARCH whose lines all sit the same amount of
indentation left or right of the code's (a snippet copied out of a class, dedented) matches, and
its REPLACE is shifted by that same amount; relative indentation must still be exact. Anything
else is strict: a SEARCH that is not in the code, or is in it more than once, fails the whole
reply with a message naming the block and why. Blocks apply in order, each to the code the ones
before it left. Replies are untrusted: sizes and counts are bounded, and a bad reply is an error
string, never an exception.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

from agent.replies.code import extract_code
from sandbox.code import code_hash
from sandbox.result import EvalResult, new_result

EditMode = Literal["full", "diff", "auto"]
EDIT_MODES: tuple[str, ...] = get_args(EditMode)
BAD_EDIT = "bad_edit"  # the failure kind of a reply whose edits could not be applied

MAX_REPLY_CHARS = 200_000  # longer replies are refused whole: no real answer is this long
MAX_BLOCKS = 24  # a rewrite in more pieces than this should be a whole module
MAX_CODE_CHARS = 200_000  # the code before and after the edits
MAX_LINE_CHECKS = 2_000_000  # line comparisons per reply: bounds the indentation-shift search
QUOTE_CHARS = 80  # how much of a line an error message quotes

_SEARCH = re.compile(r"^<{5,9}\s*SEARCH\b", re.IGNORECASE)
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9}\s*REPLACE\b", re.IGNORECASE)
_FENCE = re.compile(r"^(`{3,}|~{3,})[\w+.-]*\s*$")


class Reading(NamedTuple):
    """What a reply gave: the code (None: none), and why there is none when it is a bad edit."""

    code: str | None
    error: str | None


@dataclass(frozen=True)
class Block:
    number: int  # 1-based, as the error messages count
    search: list[str]
    replace: list[str]


class EditError(ValueError):
    """A reply whose blocks cannot be read or applied; the message says which block and why."""


@dataclass(frozen=True)
class EditContext:
    """One iteration's edits, for the check step: the code they apply to (None: whole modules
    were asked for) and why the Generator's reply could not be read (None: it could, or gave
    none). Built once, by the node that asked; a re-ask's own error travels with its `Reading`."""

    base: str | None = None
    error: str | None = None

    def diff(self, code: str) -> str:
        """The unified diff from the code shown to `code` ("" when no code was shown)."""
        return edit_diff(self.base, code) if self.base is not None else ""


def has_edit_blocks(reply: str) -> bool:
    """Whether any line of the reply is a SEARCH marker (the reply means to edit)."""
    return any(_SEARCH.match(line.strip()) for line in _lines(reply[:MAX_REPLY_CHARS]))


def code_from_reply(reply: str, base: str | None, mode: str) -> Reading:
    """The code a reply means: its blocks applied to `base`, or the whole module it holds.

    Total: any text in, a `Reading` out. `error` is set only for a bad edit (the iteration's
    failed attempt, kind `bad_edit`); a reply with no code at all is (None, None), as before.
    """
    try:
        if mode not in EDIT_MODES:
            raise ValueError(f"edit mode {mode!r}: choose one of {', '.join(EDIT_MODES)}")
        text = reply if isinstance(reply, str) else ""
        if mode == "full" or (base is None and not has_edit_blocks(text)):
            return Reading(extract_code(text), None)
        if base is None:
            raise EditError(
                "the reply holds edit blocks, but no code was shown to edit: write the whole module"
            )
        if len(text) > MAX_REPLY_CHARS:
            raise EditError(f"the reply is over {MAX_REPLY_CHARS:,} characters: not read")
        if not has_edit_blocks(text):
            if mode == "auto":
                return Reading(extract_code(text), None)
            raise EditError(
                "the reply holds no edit blocks: change the code shown with "
                "<<<<<<< SEARCH / ======= / >>>>>>> REPLACE blocks"
            )
        return Reading(apply_blocks(base, parse_blocks(text)), None)
    except EditError as exc:
        return Reading(None, str(exc))


def parse_blocks(reply: str) -> list[Block]:
    """The reply's blocks, in order; EditError when one is malformed or there are too many."""
    blocks: list[Block] = []
    phase: str | None = None  # "search", "replace", or None between blocks
    search: list[str] = []
    part: list[str] = []
    for line in _lines(reply):
        marker = line.strip()
        number = len(blocks) + 1
        if _SEARCH.match(marker):
            if phase is not None:
                raise EditError(f"edit block {number} is not closed before the next SEARCH line")
            if number > MAX_BLOCKS:
                raise EditError(
                    f"the reply has more than {MAX_BLOCKS} edit blocks: send fewer, larger "
                    "blocks, or the whole module"
                )
            phase, part = "search", []
        elif phase is None:
            continue  # prose, fences, an example-usage tail: outside every block
        elif _DIVIDER.match(marker):
            if phase == "replace":
                raise EditError(f"edit block {number} has a second ======= line")
            phase, search, part = "replace", _trim(part), []
        elif _REPLACE.match(marker):
            if phase == "search":
                raise EditError(
                    f"edit block {number} has no ======= line between its SEARCH and REPLACE parts"
                )
            if not search:
                raise EditError(
                    f"edit block {number}: its SEARCH part is empty; copy the lines to change "
                    "from the code shown"
                )
            blocks.append(Block(number, search, _trim(part)))
            phase = None
        else:
            part.append(line)
    if phase is not None:
        raise EditError(
            f"edit block {len(blocks) + 1} is not closed: no >>>>>>> REPLACE line "
            "(was the reply cut short?)"
        )
    return blocks


def apply_blocks(base: str, blocks: list[Block]) -> str:
    """`base` with every block applied in order; EditError naming the first that does not fit."""
    if len(base) > MAX_CODE_CHARS:
        raise EditError(f"the code shown is over {MAX_CODE_CHARS:,} characters: not edited")
    lines = [line.rstrip() for line in _lines(base)]
    budget = [MAX_LINE_CHECKS]
    for block in blocks:
        start, replace = _locate(lines, block, budget)
        lines[start : start + len(block.search)] = replace
        if sum(len(line) + 1 for line in lines) > MAX_CODE_CHARS:
            raise EditError(
                f"edit block {block.number} makes the code over {MAX_CODE_CHARS:,} characters"
            )
    code = "\n".join(lines).strip("\n") + "\n"
    if code == "\n".join(line.rstrip() for line in _lines(base)).strip("\n") + "\n":
        raise EditError("the edit blocks change nothing: each REPLACE part equals its SEARCH part")
    return code


def edit_diff(base: str, code: str) -> str:
    """The unified diff from `base` to `code`, as the archive keeps an attempt's diff."""
    diff = difflib.unified_diff(
        base.splitlines(keepends=True),
        code.splitlines(keepends=True),
        "a/candidate.py",
        "b/candidate.py",
    )
    return "".join(diff)


def bad_edit_result(error: str) -> EvalResult:
    """The failed attempt of a reply whose edits could not be applied (no sandbox involved)."""
    return new_result(BAD_EDIT, error, code_hash(""))


# --------------------------------------------------------------------------- matching


def _locate(lines: list[str], block: Block, budget: list[int]) -> tuple[int, list[str]]:
    """Where the block's SEARCH sits in `lines` (exact, else shifted), and its REPLACE lines as
    they go there; EditError when it is nowhere or in more than one place."""
    search = [line.rstrip() for line in block.search]
    exact = _exact_matches(lines, search)
    if len(exact) == 1:
        return exact[0], [line.rstrip() for line in block.replace]
    if not exact:
        shifted = _shifted_matches(lines, search, block.number, budget)
        if len(shifted) == 1:
            start, shift = shifted[0]
            return start, [_reindent(line, shift, block.number) for line in block.replace]
        if not shifted:
            raise EditError(_not_found(lines, search, block.number))
        exact = [start for start, _ in shifted]
    raise EditError(
        f"edit block {block.number}: its SEARCH text occurs {len(exact)} times in the code shown "
        f"(first line: {_quote(search[0])}); copy more lines around it so it matches one place"
    )


def _exact_matches(lines: list[str], search: list[str]) -> list[int]:
    """Line numbers where `search` starts in `lines` (whole lines, trailing spaces ignored)."""
    text = "\n" + "\n".join(lines) + "\n"
    needle = "\n" + "\n".join(search) + "\n"
    found: list[int] = []
    at = text.find(needle)
    while at >= 0 and len(found) < 10:
        found.append(text.count("\n", 0, at))
        at = text.find(needle, at + 1)
    return found


Shift = tuple[str, int]  # (indentation to add, characters to remove) on every non-blank line


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _shifted_matches(
    lines: list[str], search: list[str], number: int, budget: list[int]
) -> list[tuple[int, Shift]]:
    """Places where `search` matches once every non-blank line is shifted by one same amount."""
    first = search[0]
    found: list[tuple[int, Shift]] = []
    for start in range(len(lines) - len(search) + 1):
        if lines[start].strip() != first.strip():
            continue
        have, want = _indent(lines[start]), _indent(first)
        if have.endswith(want):
            shift: Shift = (have[: len(have) - len(want)], 0)
        elif want.endswith(have):
            shift = ("", len(want) - len(have))
        else:
            continue
        budget[0] -= len(search)
        if budget[0] < 0:
            raise EditError(f"edit block {number}: too costly to match; send smaller blocks")
        if all(_shifted(s, shift) == line for s, line in zip(search, lines[start:], strict=False)):
            found.append((start, shift))
            if len(found) >= 10:
                break
    return found


def _shifted(line: str, shift: Shift) -> str | None:
    """`line` moved by `shift` (blank lines stay blank; None when it cannot lose that much)."""
    if not line.strip():
        return ""
    add, remove = shift
    if remove and not line[:remove].isspace():
        return None
    return add + line[remove:]


def _reindent(line: str, shift: Shift, number: int) -> str:
    moved = _shifted(line.rstrip(), shift)
    if moved is None:
        raise EditError(
            f"edit block {number}: its REPLACE lines are indented less than its SEARCH lines "
            f"({_quote(line)})"
        )
    return moved


def _not_found(lines: list[str], search: list[str], number: int) -> str:
    """Why a SEARCH is not in the code: its first line that matches no line, with the closest."""
    message = (
        f"edit block {number}: its SEARCH text is not in the code shown "
        f"(first line: {_quote(search[0])})"
    )
    stripped = {line.strip() for line in lines if line.strip()}
    for n, line in enumerate(search, 1):
        if line.strip() and line.strip() not in stripped:
            close = difflib.get_close_matches(line.strip(), list(stripped)[:2000], n=1)
            hint = f"; the closest line of the code is {_quote(close[0])}" if close else ""
            where = f"its line {n} {_quote(line)} matches no whole line of the code"
            return f"{message}; {where}{hint}"
    return f"{message}; each of its lines is in the code, but not together with this indentation"


# --------------------------------------------------------------------------- text


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _trim(part: list[str]) -> list[str]:
    """A part without its blank lines at either end, nor a fence line that opens or closes it."""
    lines = list(part)
    while lines and (not lines[0].strip() or _FENCE.match(lines[0].strip())):
        lines.pop(0)
    while lines and (not lines[-1].strip() or _FENCE.match(lines[-1].strip())):
        lines.pop()
    return lines


def _quote(line: str) -> str:
    text = line.strip()
    return repr(text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "...")
