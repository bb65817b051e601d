"""What a candidate leaves in its out dir, read back as hostile input (sandbox/untrusted.py).

Each case plants what a hostile candidate could leave (deep JSON, millions of values, huge or
non-finite numbers, a FIFO, links to devices, /proc and host files, a parse bomb) and checks that
the reader refuses it with a message naming the file and the bound, without hanging, without
growing the process by 100 MB, without a host file's content appearing anywhere. The evaluator
tests drive the same files through `Evaluator` and the run archive, as a search would.
"""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from sandbox.backends.base import Limits
from sandbox.code import MAX_OPERATORS_PER_STATEMENT, MAX_SOURCE_BYTES, code_hash, static_problem
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.job_report import read_report
from sandbox.scoring import InvalidPredictions, read_predictions
from sandbox.untrusted import MAX_REPORT_BYTES, TEXT_LIMITS, HostileOutput, read_bounded
from tests.helpers.sandbox_jobs import NET, ScriptedBackend
from tools.train_candidate import make_train_candidate

MIB = 2**20
OK = {"status": "ok", "kind": "ok", "params": 10, "flops": 20, "timings": {"train_s": 1.0}}


@pytest.fixture
def secret(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A host file whose content must never show up: a report that would be believed if read."""
    token = f"HOST-SECRET-{uuid.uuid4().hex}"
    path = tmp_path / "host-secret.json"
    path.write_text(json.dumps({"status": "error", "kind": "shape", "message": token}))
    yield path, token


def nested(depth: int, opener: str = "[") -> bytes:
    if opener == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"0" + b"}" * depth


# --- the bounded reader ----------------------------------------------------------------------


def test_a_plain_report_is_read_and_typed(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(OK | {"message": '[not {nested}] \\" ['}))
    report = read_report(tmp_path)
    assert report is not None
    assert (report["params"], report["flops"], report["train_s"]) == (10, 20, 1.0)
    assert report["message"] == '[not {nested}] \\" ['  # brackets in strings are not structure


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (nested(9), "nests deeper than the 8 levels"),
        (nested(1_000), "nests deeper"),
        (nested(500_000), "nests deeper"),  # 1 MB: a RecursionError in json.loads before
        (nested(50_000, "{"), "nests deeper"),
        (b"[" + b"{}," * 300_000 + b"{}]", "holds over the 10,000 values"),
        (b"[" + b"0," * 400_000 + b"0]", "holds over"),
        (json.dumps(OK | {"params": 10**40}).encode(), "params = 10000000000000000000000000000"),
        (json.dumps(OK | {"params": -1}).encode(), "params = -1 is not an integer in 0..1e+15"),
        (json.dumps(OK | {"params": 1.5}).encode(), "params = 1.5 is not an integer"),
        (json.dumps(OK | {"flops": True}).encode(), "flops = True is not an integer"),
        (json.dumps(OK | {"flops": 10**100}).encode(), "digits, over the 64"),
        (json.dumps(OK | {"latency_ms": -0.5}).encode(), "latency_ms = -0.5 is not a number"),
        (json.dumps(OK | {"peak_memory_mb": "1"}).encode(), "peak_memory_mb = '1' is not a num"),
        (b'{"status": "ok", "latency_ms": 1e999}', "too large to be finite"),
        (b'{"status": "ok", "latency_ms": NaN}', "NaN, which is not a finite number"),
        (b'{"status": "ok", "timings": {"train_s": -Infinity}}', "-Infinity, which is not"),
        (json.dumps(OK | {"timings": [1]}).encode(), "timings is [1], not an object"),
        (json.dumps(OK | {"message": {"a": 1}}).encode(), "message is {'a': 1}, not a string"),
        (b"[1, 2]", "holds a JSON list, not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"status": "ok"', "not valid JSON"),
        (b" " * (MAX_REPORT_BYTES + 1), "over the 1,048,576 it may have"),
    ],
    ids=lambda v: v if isinstance(v, str) else "x",
)
def test_a_hostile_report_is_refused_with_the_bound(
    tmp_path: Path, content: bytes, words: str
) -> None:
    (tmp_path / "report.json").write_bytes(content)
    with pytest.raises(HostileOutput, match=r"report\.json") as caught:
        bounded_memory(lambda: read_report(tmp_path))
    assert words in str(caught.value)
    assert len(str(caught.value)) < 300


def test_text_fields_are_cut_not_refused(tmp_path: Path) -> None:
    long = OK | {"message": "m" * 10_000, "traceback": "x" * 9_000 + "END"}
    (tmp_path / "report.json").write_text(json.dumps(long))
    report = read_report(tmp_path)
    assert report is not None and len(report["message"]) == TEXT_LIMITS["message"]
    assert report["traceback"].endswith("END") and len(report["traceback"]) == 4000


def plant(out: Path, name: str, kind: str, target: Path | None = None) -> None:
    """Leave `name` in `out` as something other than a plain file of the runner's."""
    path = out / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "hardlink":
        assert target is not None
        os.link(target, path)
    else:
        fixed = {"dev-zero": Path("/dev/zero"), "proc": Path("/proc/self/environ")}
        link_to = fixed.get(kind, target)
        assert link_to is not None
        path.symlink_to(link_to)


KINDS = [
    ("fifo", "is a FIFO, not a regular file"),
    ("dev-zero", "is a symbolic link"),
    ("proc", "is a symbolic link"),
    ("host-file", "is a symbolic link"),
    ("hardlink", "has 2 hard links"),
    ("dir", "is a directory"),
]


@pytest.mark.parametrize(("kind", "words"), KINDS)
@pytest.mark.parametrize("name", ["report.json", "predictions.json"])
def test_only_regular_files_are_read(
    tmp_path: Path, secret: tuple[Path, str], name: str, kind: str, words: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    plant(out, name, kind, secret[0])
    done: list[BaseException | bytes | None] = []

    def read() -> None:
        try:
            done.append(read_bounded(out, name, MIB))
        except BaseException as exc:
            done.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert done, f"reading a {kind} hung"  # a FIFO blocks an ordinary open for good
    assert isinstance(done[0], HostileOutput), done[0]
    assert words in str(done[0]) and name in str(done[0])
    assert secret[1] not in str(done[0])


def test_the_out_dir_itself_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "report.json").write_text(json.dumps(OK))
    (tmp_path / "out").symlink_to(tmp_path / "real")
    with pytest.raises(HostileOutput, match="out dir cannot be opened"):
        read_bounded(tmp_path / "out", "report.json", MIB)


# --- predictions: the count before anything is built ---------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[" + b"{}," * 10_000_000 + b"{}]", "over the 1,266 it may have"),  # 30 MB
        (b"[" + b"{}," * 300 + b"{}]", "expected 400 predictions, got 301"),
        (nested(5), "expected 400 predictions, got 1"),
        (nested(1_000), "over the 1,266"),
        (b"[" + b"0, " * 399 + b"-1]", "class indices in [0, 10)"),
        (b"[" + b"0, " * 399 + b"10]", "class indices in [0, 10)"),
        (b"[" + b"0, " * 399 + b"1e0]", "class indices"),
        (b'{"a": [[[[[[[[[[1]]]]]]]]]]}', "not valid JSON: predictions.json nests deeper"),
        (b"NaN", "not valid JSON"),
    ],
    ids=lambda v: v if isinstance(v, str) else "x",
)
def test_hostile_predictions_are_refused_before_they_are_built(
    tmp_path: Path, content: bytes, words: str
) -> None:
    (tmp_path / "predictions.json").write_bytes(content)
    with pytest.raises(InvalidPredictions) as caught:
        bounded_memory(lambda: read_predictions(tmp_path / "predictions.json", 400, 10))
    assert words in str(caught.value)


def test_predictions_as_the_runner_writes_them_are_read(tmp_path: Path) -> None:
    values = [i % 10 for i in range(400)]
    (tmp_path / "predictions.json").write_text(json.dumps(values))
    assert read_predictions(tmp_path / "predictions.json", 400, 10).tolist() == values


# --- the source: parse bombs ---------------------------------------------------------------


def bomb(kind: str, depth: int) -> str:
    body = {
        "unary": "-" * depth + "1",
        "not": "not " * depth + "x",
        "lambda": "lambda: " * depth + "1",
        "calls": "f" + "()" * depth,
        "subscripts": "a" + "[0]" * depth,
        "power": "2**" * depth + "2",
        "parens-and-unary": "(" * 150 + "-" * depth + "1" + ")" * 150,
        "fstring": 'f"{' + "-" * depth + '1}"',
    }[kind]
    return NET + "x = " + body + "\n"


@pytest.mark.parametrize("depth", [MAX_OPERATORS_PER_STATEMENT + 1, 5_000, 60_000])
@pytest.mark.parametrize(
    "kind",
    ["unary", "not", "lambda", "calls", "subscripts", "power", "parens-and-unary", "fstring"],
)
def test_a_parse_bomb_is_a_syntax_failure_naming_the_limit(kind: str, depth: int) -> None:
    source = bomb(kind, depth)
    problem = bounded_memory(lambda: static_problem(source))
    assert problem is not None and problem[0] == "syntax", problem
    limits = ("1,000 operators deep", "50,000 operators", f"{MAX_SOURCE_BYTES:,} a candidate")
    assert any(limit in problem[1] for limit in limits), problem
    assert len(code_hash(source)) == 64  # hashed as text, without parsing it


def test_a_statement_just_within_the_bound_still_parses() -> None:
    assert static_problem(bomb("unary", 900)) is None


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (NET + "#" * (MAX_SOURCE_BYTES + 1), "bytes, over the 262,144"),
        (NET + "\n" * 6_000, "lines, over the 5,000"),
        (NET + "\n".join("x = " + "-" * 900 + "1" for _ in range(60)), "over 50,000 operators"),
        (NET + "x = (\n" + "-\n" * 1_500 + "1)\n", "nests over 1,000 operators"),
    ],
    ids=["bytes", "lines", "operators", "multi-line statement"],
)
def test_a_source_too_large_to_parse_safely_is_refused(source: str, words: str) -> None:
    problem = bounded_memory(lambda: static_problem(source))
    assert problem is not None and problem[0] == "syntax" and words in problem[1], problem


# --- through the evaluator, the tool and the archive ---------------------------------------


def in_out_dir(act: Callable[[Path], None]) -> ScriptedBackend:
    """A scripted sandbox whose candidate left `act`'s files in the out dir."""
    return ScriptedBackend(lambda job: act(job.out_dir))


def ok_with(predictions: bytes | None = None, **report: Any) -> Callable[[Path], None]:
    def act(out: Path) -> None:
        (out / "report.json").write_text(json.dumps(OK | report))
        if predictions is not None:
            (out / "predictions.json").write_bytes(predictions)

    return act


def planted(name: str, kind: str, target: Path) -> Callable[[Path], None]:
    def act(out: Path) -> None:
        if name == "predictions.json":
            (out / "report.json").write_text(json.dumps(OK))
        plant(out, name, kind, target)

    return act


def raw(name: str, content: bytes) -> Callable[[Path], None]:
    def act(out: Path) -> None:
        (out / name).write_bytes(content)

    return act


ATTACKS: dict[str, Callable[[Path], Callable[[Path], None]]] = {
    "nested report": lambda _: raw("report.json", nested(500_000)),
    "nested report object": lambda _: raw("report.json", nested(30_000, "{")),
    "nested predictions": lambda _: ok_with(nested(200_000)),
    "params 10**40": lambda _: ok_with(b"[" + b"0, " * 399 + b"0]", params=10**40),
    "failure with params 10**40": lambda _: raw(
        "report.json", json.dumps({"status": "error", "kind": "shape", "params": 10**40}).encode()
    ),
    "millions of empty objects": lambda _: ok_with(b"[" + b"{}," * 15_000_000 + b"{}]"),
    **{
        f"{kind} as {name}": (lambda n, k: lambda target: planted(n, k, target))(name, kind)
        for name in ("report.json", "predictions.json")
        for kind in ("fifo", "dev-zero", "proc", "host-file")  # the out dir is a tmpfs: no
    },  # hard link reaches a host file from there (EXDEV); the reader's test covers one anyway
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_evaluator_classifies_hostile_output_and_the_archive_records_it(
    mnist: PreparedDataset, tmp_path: Path, secret: tuple[Path, str], attack: str
) -> None:
    backend = in_out_dir(ATTACKS[attack](secret[0]))
    evaluator = Evaluator(mnist, backend, {}, Limits(timeout_s=9))
    tool = make_train_candidate(evaluator)
    result = bounded_memory(lambda: tool.invoke({"code": NET}))
    assert (result["status"], result["kind"]) == ("error", "runtime"), result
    name = "predictions.json" if "predictions" in attack or "objects" in attack else "report.json"
    assert name in result["message"], result
    assert secret[1] not in json.dumps(result)
    archive = RunArchive(tmp_path / "run")
    archive.record_candidate(0, NET, result)
    (row,) = archive.rows()
    assert (row["kind"], row["params"]) == ("runtime", None)
    assert secret[1] not in json.dumps(row)


def test_a_parse_bomb_never_reaches_the_sandbox(mnist: PreparedDataset) -> None:
    def act(out: Path) -> None:
        raise AssertionError("the sandbox was started for a source that cannot be parsed")

    evaluator = Evaluator(mnist, in_out_dir(act), {}, Limits(timeout_s=9))
    result = bounded_memory(lambda: evaluator.evaluate(bomb("lambda", 20_000)))
    assert result["kind"] == "syntax" and "operators deep" in result["message"], result


def bounded_memory(action: Callable[[], Any], limit_mb: float = 100) -> Any:
    """Run `action`, failing if Python allocations grew by `limit_mb` at their peak."""
    tracemalloc.start()
    try:
        return action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < limit_mb * MIB, f"the reader's memory peaked at {peak / MIB:.0f} MB"
