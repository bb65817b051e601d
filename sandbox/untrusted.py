"""Reading what a candidate left in its out dir: regular files only, bounded size, depth and count.

Everything in a job's out dir is hostile input: the candidate's process can write, replace or
link any name there before it dies. So a file is opened without following a symbolic link and
without blocking (a FIFO would hang an ordinary open), checked on the open descriptor to be a
regular file with one link (not a device, FIFO or socket, nor a hard link to a host file), its
size checked before a byte is read; JSON is scanned for nesting depth and element count before
the parser builds a single object, and every number is checked (finite, in range) before it
reaches the archive. Anything that breaks a bound raises `HostileOutput`, whose message names
the file and the bound: the evaluator turns it into that candidate's `runtime` failure.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The runner's report is a few KB (a 12-line traceback tail at most); 1 MiB is far beyond it.
MAX_REPORT_BYTES = 1 * 2**20
MAX_REPORT_DEPTH = 8  # the runner nests two levels (report -> timings)
MAX_REPORT_ITEMS = 10_000  # values and containers, all levels together
MAX_INT_DIGITS = 64  # longer integer literals are not parsed at all (Python's own cap is 4,300)
# Ranges a metric must fall in to be believed: anything outside was not measured by our runner.
MAX_COUNT = 10**15  # parameters, FLOPs
MAX_MEGABYTES = 10.0**9  # peak memory, in MiB
MAX_MILLISECONDS = 10.0**9  # latency
MAX_SECONDS = 10.0**7  # timings (the longest wall-time limit is hours, not months)
# Text fields are cut, not rejected: they are shown to the Improver, which needs only their gist
# (a message may carry a dry run's shape trace, hence its 2,000 characters).
TEXT_LIMITS = {"status": 16, "kind": 32, "phase": 32, "message": 2000, "traceback": 4000}

# Characters that matter when scanning JSON for its shape; everything else is skipped unread.
_JSON_SPECIAL = re.compile(rb'[\[\]{}",\\]')


class HostileOutput(ValueError):
    """A file in the out dir broke a bound; the message names the file and the bound."""


@contextlib.contextmanager
def open_regular(directory: Path, name: str, max_bytes: int) -> Iterator[tuple[int, int] | None]:
    """(descriptor, size) of `directory/name` if it is a regular file within `max_bytes`.

    Yields None when there is no such name. The directory is opened without following a link
    too, and the file relative to it, so no path component the candidate controls is followed.
    """
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise HostileOutput(f"the out dir cannot be opened safely ({exc.strerror})") from None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise HostileOutput(f"{name} is a symbolic link, not a regular file") from None
            raise HostileOutput(f"{name} cannot be opened ({exc.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise HostileOutput(f"{name} is a {_file_type(st.st_mode)}, not a regular file")
            if st.st_nlink != 1:
                raise HostileOutput(f"{name} has {st.st_nlink} hard links; a result file has one")
            if st.st_size > max_bytes:
                raise HostileOutput(
                    f"{name} is {st.st_size:,} bytes, over the {max_bytes:,} it may have"
                )
            yield fd, st.st_size
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def read_bounded(directory: Path, name: str, max_bytes: int) -> bytes | None:
    """The bytes of `directory/name` (see open_regular), or None when it does not exist."""
    with open_regular(directory, name, max_bytes) as opened:
        if opened is None:
            return None
        fd, _ = opened
        chunks, total = [], 0
        while chunk := os.read(fd, min(2**20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # it grew after fstat: a writer is still alive somewhere
                raise HostileOutput(f"{name} grew past the {max_bytes:,} bytes it may have")
        return b"".join(chunks)


def copy_bounded(directory: Path, name: str, dest: Path, max_bytes: int) -> bool:
    """Copy `directory/name` to `dest` (through a temp file) if it is a sane regular file."""
    try:
        with open_regular(directory, name, max_bytes) as opened:
            if opened is None:
                return False
            fd, _ = opened
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            copied = 0
            with tmp.open("wb") as out:
                while copied <= max_bytes and (chunk := os.read(fd, 2**20)):
                    out.write(chunk)
                    copied += len(chunk)
            if copied > max_bytes:
                tmp.unlink()
                return False
            tmp.replace(dest)
            return True
    except (HostileOutput, OSError):
        return False


def _file_type(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((word for test, word in kinds if test(mode)), "special file")


def check_json_shape(data: bytes, name: str, max_depth: int, max_items: int) -> None:
    """Raise unless `data`, read as JSON, nests at most `max_depth` deep and holds at most
    `max_items` values: scanned before parsing, so the parser never recurses or allocates past
    either bound (it recurses per level, and would build every empty `{}` as a dict)."""
    depth = items = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(data):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == b"\\":
                escaped_at = at + 1
            elif char == b'"':
                in_string = False
            continue
        if char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            items += 1
            if depth > max_depth:
                raise HostileOutput(f"{name} nests deeper than the {max_depth} levels it may have")
        elif char in (b"]", b"}"):
            depth -= 1
        elif char == b",":
            items += 1
        if items > max_items:
            raise HostileOutput(f"{name} holds over the {max_items:,} values it may have")


def parse_json(data: bytes, name: str, max_depth: int, max_items: int) -> Any:
    """JSON within the bounds above; NaN, Infinity and huge integer literals are refused."""
    check_json_shape(data, name, max_depth, max_items)

    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise HostileOutput(
                f"{name} has an integer of {len(text):,} digits, over the {MAX_INT_DIGITS} "
                "a number may have"
            )
        return int(text)

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise HostileOutput(f"{name} has a number ({text[:40]}) too large to be finite")
        return value

    def no_constant(text: str) -> Any:
        raise HostileOutput(f"{name} has {text}, which is not a finite number")

    try:
        return json.loads(
            data.decode("utf-8"),
            parse_int=bounded_int,
            parse_float=finite_float,
            parse_constant=no_constant,
        )
    except UnicodeDecodeError:
        raise HostileOutput(f"{name} is not UTF-8 text") from None
    except HostileOutput:
        raise
    except ValueError as exc:  # JSONDecodeError included
        raise HostileOutput(f"{name} is not valid JSON ({str(exc)[:120]})") from None


def short(value: Any) -> str:
    """A value as it may appear in a message: never more than a few dozen characters."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge int"
    return text if len(text) <= 48 else f"{text[:45]}..."
