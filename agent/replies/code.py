"""Read the Generator's module from what a small LLM wrote (the Improver's advice has its own
reader, `parse_improvement`).

Small local models (down to ~135M parameters) wrap code in prose, forget or half-close fences,
write several blocks, or leave prose in the code. The reader is a total function: any text in, a
module or None out, never an exception. Nothing is ever executed: code is only looked at with
`ast`. Whether a block "defines Net" is decided by `sandbox.code.defines_net`, the one static
gate, the same that the Evaluator's precheck applies.

How `extract_code` chooses, in order (the first rule that yields something wins):

1. If a `</think>` tag is present (reasoning models), the answer after the last one is read first;
   the whole text is the fallback.
2. Fenced blocks (``` or ~~~, also unclosed ones and CodeLlama's [PYTHON] tags) tagged python/py/
   untagged, or tagged otherwise but defining `Net`. Among the blocks that parse and define `Net`,
   one that also has imports beats one without; ties go to the LAST block (a model that writes
   two versions means the second). Fragments: if that block uses names it does not bind (say `nn`
   or `ResBlock`) and other python blocks bind them with nothing but imports, definitions and
   constants, those blocks are joined to it in text order. A block that defines `Net` itself is
   never joined (it is another version, not a fragment).
3. A fenced block that mentions `class Net` but does not parse is returned as it is: its syntax
   error must reach the sandbox, be classified and be fed back.
4. Bare code: the text with fence lines removed, from the first line that starts like Python
   (import/from/class/def/@) at column 0, with trailing prose paragraphs trimmed until it parses
   and defines `Net`. If nothing parses but the text itself starts like Python and contains
   `class Net`, it is returned whole (clearly code, broken).
5. Any other python-looking fenced block (the sandbox then reports `no_net`, which tells the
   Improver more than "no code").
6. None.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
import warnings
from dataclasses import dataclass

from sandbox.code import defines_net

__all__ = ["extract_code"]

# Above this, the text is cut before any parsing: no real reply is this long, and it bounds the
# time a pathological input can take (every step below is linear or capped in attempts).
_MAX_TEXT = 200_000
_MAX_SPAN_ATTEMPTS = 64  # prose-trimming parses tried from one start line of bare text
_PARSE_BUDGET = 600_000  # characters handed to ast.parse while trimming bare text
_PY_TAGS = {"python", "py", "python3", "py3", "pytorch", "torch", "python2", "ipython"}
_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__"}

_OPEN_FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*(?P<tag>[A-Za-z0-9_+.#-]*)[^`~\n]*$")
_MIDLINE_OPEN = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<tag>[A-Za-z0-9_+.-]*)[ \t]*$")
_TAG_LINE = re.compile(r"^[ \t]*(?:python3?|py|pytorch)[ \t]*:?[ \t]*$", re.IGNORECASE)
_CODE_START = re.compile(r"^(?:import [A-Za-z_]|from [A-Za-z_.][\w.]* import |class \w|def \w|@\w)")
_CLASS_NET = re.compile(r"^[ \t]*class[ \t]+Net\b", re.MULTILINE)


@dataclass
class _Block:
    index: int
    tag: str
    code: str


def _safe_parse(code: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" and the like: not our news
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def _has_imports(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body)


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _free_names(tree: ast.AST) -> set[str]:
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - _bound_names(tree) - _BUILTINS


def _is_definitions_only(tree: ast.Module) -> bool:
    """Imports, defs, classes and plain assignments: safe to join as a fragment (no usage demo)."""
    allowed = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
    )
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    return bool(body) and all(isinstance(n, allowed) for n in body)


def _strip_tag_line(code: str) -> str:
    """Drop a first line that is only a language name (```\\npython\\nimport torch ...)."""
    lines = code.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _TAG_LINE.match(lines[0]):
        lines.pop(0)
    return "\n".join(lines)


def _tidy(code: str) -> str:
    code = textwrap.dedent(_strip_tag_line(code)).strip("\n")
    return "\n".join(line.rstrip() for line in code.split("\n")) + "\n"


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    # CodeLlama-style tags become fences, so one parser handles them.
    text = re.sub(r"\[PYTHON\]", "\n```python\n", text, flags=re.IGNORECASE)
    return re.sub(r"\[/PYTHON\]", "\n```\n", text, flags=re.IGNORECASE)


def _fenced_blocks(text: str) -> tuple[list[_Block], list[str]]:
    """The fenced blocks (an unclosed one runs to the end) and the lines outside any fence."""
    blocks: list[_Block] = []
    outside: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        opened = _OPEN_FENCE.match(stripped)
        if opened is None and ("```" in line or "~~~" in line):
            mid = _MIDLINE_OPEN.search(line)  # prose then a fence at the end of the line
            if mid is not None:
                outside.append(line[: mid.start()])
                opened = mid
        if opened is None:
            outside.append(line)
            i += 1
            continue
        fence, tag = opened.group("fence"), opened.group("tag").lower()
        body: list[str] = []
        i += 1
        while i < len(lines):
            inner = lines[i]
            inner_stripped = inner.strip()
            if inner_stripped.startswith(fence[0] * len(fence)):
                break  # a closing fence (anything after it on the line is prose)
            tail = inner.rstrip()
            if tail.endswith(fence[0] * 3) and inner_stripped.strip(fence[0]):
                body.append(tail.rstrip(fence[0]))  # code``` : closed at the end of a code line
                break
            body.append(inner)
            i += 1
        i += 1
        blocks.append(_Block(len(blocks), tag, "\n".join(body)))
    return blocks, outside


def _looks_like_python(code: str) -> bool:
    return any(_CODE_START.match(line.strip()) for line in code.split("\n"))


def _join_fragments(
    chosen: _Block, tree: ast.Module, others: list[tuple[_Block, ast.Module]]
) -> str:
    """The chosen block, plus the definition-only blocks that bind names it needs, in text order."""
    needed = _free_names(tree)
    picked: dict[int, _Block] = {}
    changed = True
    while needed and changed:
        changed = False
        for block, other in others:
            if block.index in picked:
                continue
            provides = _bound_names(other) & needed
            if provides:
                picked[block.index] = block
                needed = (needed - _bound_names(other)) | _free_names(other)
                changed = True
    if not picked:
        return chosen.code
    parts = [b for _, b in sorted({**picked, chosen.index: chosen}.items())]
    joined = "\n\n".join(_tidy(b.code).rstrip("\n") for b in parts)
    return joined if _safe_parse(joined) is not None else chosen.code


def _is_prose(line: str) -> bool:
    """A line of explanation, not of code: starts at column 0 with a word, reads as a sentence."""
    if not line[:1].isalpha() or _CODE_START.match(line) or line.rstrip().endswith(":"):
        return False
    return len(line.split()) >= 3 and _safe_parse(line) is None


def _trim_prose_tail(code: str) -> str | None:
    """`code` without the explanation a model wrote inside an unclosed fence, if that mends it.

    Only a tail that starts with a prose line after a blank line is cut, so a genuine syntax
    error in the code itself is left for the sandbox to report.
    """
    lines = code.split("\n")
    tries = 0
    for j in range(1, min(len(lines), 5000)):
        if not lines[j - 1].strip() and _is_prose(lines[j]):
            head = "\n".join(lines[: j - 1]) + "\n"
            tree = _safe_parse(head)
            if tree is not None and defines_net(tree):
                return head
            tries += 1
            if tries >= 8:
                break
    return None


def _from_blocks(blocks: list[_Block]) -> tuple[str | None, str | None]:
    """(code that parses and defines Net, broken code that mentions `class Net`) from fences."""
    parsed: list[tuple[_Block, ast.Module]] = []
    broken_net: str | None = None
    for block in blocks:
        code = _tidy(block.code)
        if not code.strip():
            continue
        tree = _safe_parse(code)
        if tree is None and (trimmed := _trim_prose_tail(code)) is not None:
            code, tree = trimmed, _safe_parse(trimmed)
        if tree is None:
            if _CLASS_NET.search(code):
                broken_net = code  # the last broken block that meant to define Net
            continue
        pythonish = block.tag in _PY_TAGS or (not block.tag and _looks_like_python(code))
        if pythonish or defines_net(tree):
            parsed.append((_Block(block.index, block.tag, code), tree))
    nets = [(b, t) for b, t in parsed if defines_net(t)]
    if not nets:
        return None, broken_net
    chosen, tree = max(nets, key=lambda bt: (_has_imports(bt[1]), bt[0].index))
    fragments = [(b, t) for b, t in parsed if not defines_net(t) and _is_definitions_only(t)]
    return _join_fragments(chosen, tree, fragments), broken_net


def _paragraph_ends(lines: list[str], start: int) -> list[int]:
    """End lines (exclusive) to try after `start`, longest first: the end, then each blank gap."""
    ends = [len(lines)]
    for j in range(len(lines) - 1, start, -1):
        if not lines[j].strip() and lines[j - 1].strip():
            ends.append(j)
    return ends[:_MAX_SPAN_ATTEMPTS]


def _from_bare(lines: list[str]) -> tuple[str | None, str | None]:
    """(bare code that parses and defines Net, whole text when it is clearly broken Net code)."""
    text = _strip_tag_line("\n".join(lines))
    lines = text.split("\n")
    # A code line that opens a paragraph (after a blank line or prose) may start the module.
    starts = [
        k
        for k, line in enumerate(lines)
        if _CODE_START.match(line) and (k == 0 or not _CODE_START.match(lines[k - 1]))
    ]
    net_lines = [k for k, line in enumerate(lines) if "Net" in line]
    if not starts or not net_lines:
        return None, None
    budget = _PARSE_BUDGET
    for start in starts[:8]:
        for end in _paragraph_ends(lines, max(start, net_lines[0])):
            code = "\n".join(lines[start:end])
            budget -= len(code)
            if budget < 0:
                break
            tree = _safe_parse(code)
            if tree is not None and defines_net(tree):
                return _tidy(code), None
    first = next((k for k, line in enumerate(lines) if line.strip()), 0)
    if starts[0] == first and _CLASS_NET.search(text):
        return None, _tidy(text)
    return None, None


def _extract(text: str) -> str | None:
    blocks, outside = _fenced_blocks(text)
    good, broken = _from_blocks(blocks)
    if good is not None:
        return good
    if broken is not None:
        return broken
    bare_good, bare_broken = _from_bare(outside if blocks else text.split("\n"))
    if bare_good is None and blocks:
        # Fences that were not what they seemed (a stray closing fence after bare code): read the
        # whole text with only the fence markers removed.
        unfenced = [ln for ln in text.split("\n") if not ln.strip().startswith(("```", "~~~"))]
        bare_good, more_broken = _from_bare(unfenced)
        bare_broken = bare_broken or more_broken
    if bare_good is not None:
        return bare_good
    if bare_broken is not None:
        return bare_broken
    codeish = [
        _tidy(b.code)
        for b in blocks
        if (b.tag in _PY_TAGS or not b.tag) and _looks_like_python(_tidy(b.code))
    ]
    return max(reversed(codeish), key=len) if codeish else None


def extract_code(text: str) -> str | None:
    """The complete Python module the Generator meant, or None when the reply holds no code.

    The result may not parse (a fenced block with a syntax error is still returned, so the
    sandbox can classify the failure); it is never executed here.
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return None
        text = _normalise(text[:_MAX_TEXT])
        if "</think>" in text:
            answer = _extract(text.rsplit("</think>", 1)[1])
            if answer is not None:
                return answer
        return _extract(text)
    except Exception:  # a reader of untrusted text must never take the search down
        return None
