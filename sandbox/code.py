"""Static facts about candidate source, read without ever executing it.

The source is hostile input too: CPython's parser recurses once per nesting level, so a few KB of
`------1` or `lambda: lambda: ...` end in MemoryError or RecursionError, and long chains of
calls or subscripts cost hundreds of MB. `parse_bounds` refuses such source before `ast.parse`
sees it: a size, line and per-statement operator bound, checked with the pure-Python tokenizer.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import keyword
import tokenize

from sandbox.policy import forbidden_reach

# Bounds a real candidate module never comes near (the reference net is ~1 KB, 30 lines). The
# parser fails from about 1,900 nested operators (3.11, measured); a statement of 1,000 nests at
# most 1,000 deep, and 100 indentation levels (the tokenizer's own cap) add a few hundred.
MAX_SOURCE_BYTES = 256 * 2**10
MAX_SOURCE_LINES = 5_000  # also bounds the tokenizer's quadratic joining of multi-line strings
MAX_OPERATORS_PER_STATEMENT = 1_000
# ...and in all: the tree costs ~220 bytes a node, so 256 KB of `-` chains would cost ~100 MB.
MAX_OPERATORS = 50_000
# Tokens that can add a level of nesting to the tree: operators, brackets, and these keywords.
_FLAT_OPERATORS = {",", ";"}
_NESTING_KEYWORDS = {k for k in keyword.kwlist if k not in ("True", "False", "None")}
_FSTRING_NESTING = set("([{-+~*/%@&|^<>=!.:")


@functools.lru_cache(maxsize=16)  # the hash and the static check ask about the same source
def parse_bounds(source: str) -> str | None:
    """Why `source` is too big or too deeply nested to parse safely, or None when it is not."""
    size = len(source.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return f"the module is {size:,} bytes, over the {MAX_SOURCE_BYTES:,} a candidate may have"
    lines = source.count("\n") + 1
    if lines > MAX_SOURCE_LINES:
        return f"the module has {lines:,} lines, over the {MAX_SOURCE_LINES:,} a candidate may have"
    operators = total = 0  # in the current statement, in the module
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NEWLINE:
                operators = 0
                continue
            weight = _nesting_weight(token)
            operators, total = operators + weight, total + weight
            if total > MAX_OPERATORS:
                return f"the module has over {MAX_OPERATORS:,} operators, the most it may have"
            if operators > MAX_OPERATORS_PER_STATEMENT:
                return (
                    f"a statement at line {token.start[0]} nests over "
                    f"{MAX_OPERATORS_PER_STATEMENT:,} operators deep, the most a candidate may have"
                )
    except (tokenize.TokenError, SyntaxError):
        return None  # the parser meets the same error, at or before this point: it says it best
    return None


def _nesting_weight(token: tokenize.TokenInfo) -> int:
    """How many levels of nesting a token can add to the tree, at most."""
    if token.type == tokenize.OP:
        return 0 if token.string in _FLAT_OPERATORS else 1
    if token.type == tokenize.NAME:
        return 1 if token.string in _NESTING_KEYWORDS else 0
    if token.type == tokenize.STRING and "f" in _prefix(token.string):
        # an f-string's fields are parsed as expressions of their own: count them too
        return sum(token.string.count(c) for c in _FSTRING_NESTING)
    return 0


def _prefix(literal: str) -> str:
    return literal[: len(literal) - len(literal.lstrip("rRbBuUfF"))].lower()


def _parse(source: str) -> ast.Module | None:
    """The tree of `source` when it is within bounds and parses; None otherwise."""
    if parse_bounds(source) is not None:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def normalise(source: str) -> str:
    """Source with comments, blank lines and formatting removed, when it parses.

    Two candidates that differ only in comments or layout are the same network: they share a hash,
    so the cache trains them once.
    """
    tree = _parse(source)
    if tree is None:
        return source.strip()
    try:
        return ast.unparse(tree)
    except (ValueError, RecursionError):  # unparse recurses in Python: ~300 levels
        return source.strip()


def code_hash(source: str) -> str:
    return hashlib.sha256(normalise(source).encode("utf-8", errors="surrogatepass")).hexdigest()


def static_problem(source: str) -> tuple[str, str] | None:
    """(kind, message) when the source certainly cannot work; None when only running it can tell."""
    if (too_big := parse_bounds(source)) is not None:
        return "syntax", f"the source is not parsed: {too_big}"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        text = (exc.text or "").strip()[:200]
        return "syntax", f"SyntaxError: {exc.msg} at {where}" + (f": {text}" if text else "")
    except (ValueError, RecursionError, MemoryError) as exc:  # within bounds, never expected
        return "syntax", f"the source cannot be parsed: {type(exc).__name__}: {str(exc)[:200]}"
    if (reach := forbidden_reach(tree)) is not None:  # first: what it reaches for matters most
        return "forbidden", reach
    if not defines_net(tree):
        return "no_net", "the module defines no `Net` (expected class Net(nn.Module))"
    return None


def defines_net(tree: ast.AST) -> bool:
    """THE static "defines Net" gate: whether the module could bind the name `Net`.

    The one check of its kind: the Evaluator's precheck (`static_problem`, a `no_net` result
    without a sandbox job) and the Generator-reply reader (`extract_code`, which picks the block
    that defines `Net`) both ask this. It errs towards yes: only running the code can tell
    more, so what might bind `Net` goes to the sandbox.
    """
    return any(_binds_net(node) for node in ast.walk(tree))


def _binds_net(node: ast.AST) -> bool:
    """Whether the node could bind the name `Net` (class, assignment, import, or a dynamic name)."""
    if isinstance(node, ast.ClassDef | ast.FunctionDef):
        return node.name == "Net"
    if isinstance(node, ast.Name):
        return node.id == "Net" and isinstance(node.ctx, ast.Store)
    if isinstance(node, ast.alias):
        return (node.asname or node.name) == "Net" or node.name == "*"
    # globals()["Net"] = ..., setattr(module, "Net", ...): give such code the benefit of the doubt
    return isinstance(node, ast.Constant) and node.value == "Net"
