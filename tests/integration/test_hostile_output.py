"""Hostile output (issue 18): what a candidate leaves for the host to read, on every backend.

Each program in tests/candidates/ leaves one kind of hostile result file (deeply nested JSON, an
impossible number, millions of empty objects, a FIFO, a link to a device, into /proc or to a host
file) or is itself a parse bomb. Through the `train_candidate` tool and the run archive, as a
search would meet it, on the per-candidate container, the warm worker and the process backend:
the evaluator neither hangs nor raises, returns a classified failure, grows by less than 100 MB,
shows no byte of a host file, and the archive records the candidate.
"""

from __future__ import annotations

import json
import resource
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.archive.candidates import RunArchive
from sandbox.backends.base import Backend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from tests.helpers.sandbox_jobs import QUICK, across_backends, limits, source
from tools.train_candidate import make_train_candidate

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

LIMITS = limits(timeout_s=60, memory_mb=1024, pids=64)
HANG_S = LIMITS.timeout_s + 60  # past this the evaluator is stuck, not slow
MAX_GROWTH_MB = 100
SECRET_PATH = Path(f"/tmp/nasloop-host-secret-{uuid.uuid4().hex[:8]}.json")


@dataclass(frozen=True)
class Attack:
    program: str  # in tests/candidates/
    constants: dict[str, str] = field(default_factory=dict)  # NAME -> the value's source text
    kind: str = "runtime"
    # words the message has when the host reads the out dir itself (docker, process); the warm
    # worker copies only regular files, so there a link or FIFO arrives as "no result"
    words: str = ""


ATTACKS = {
    "report nested 9 deep": Attack("nested_report", {"DEPTH": "9"}, words="nests deeper"),
    "report nested 200k deep": Attack("nested_report", {}, words="nests deeper"),
    "report objects nested 50k deep": Attack(
        "nested_report", {"DEPTH": "50_000", "OPEN": '"{"'}, words="nests deeper"
    ),
    "predictions nested 50 deep": Attack(
        "nested_predictions", {"DEPTH": "50"}, words="expected 400 predictions"
    ),
    "predictions nested 200k deep": Attack("nested_predictions", {}, words="predictions.json is"),
    "params 10**40": Attack("forged_number", {}, words="params = 1000000000000000000000000000"),
    "flops 10**400": Attack(
        "forged_number", {"FIELD": '"flops"', "VALUE": "10**400"}, words="digits, over the 64"
    ),
    "latency NaN": Attack(
        "forged_number", {"FIELD": '"latency_ms"', "VALUE": 'float("nan")'}, words="NaN"
    ),
    "train_s -inf": Attack(
        "forged_number",
        {"FIELD": '"timings.train_s"', "VALUE": 'float("-inf")'},
        words="-Infinity",
    ),
    "10M empty objects as predictions": Attack("empty_objects", {}, words="predictions.json is"),
    "300 empty objects as predictions": Attack(
        "empty_objects", {"COUNT": "300"}, words="expected 400 predictions"
    ),
    "FIFO as report": Attack("fifo_output", {}, words="report.json is a FIFO"),
    "FIFO as predictions": Attack(
        "fifo_output", {"NAME": '"predictions.json"'}, words="predictions.json is a FIFO"
    ),
    **{
        f"link to {what} as {name}": Attack(
            "link_output",
            {"NAME": f'"{name}"', "TARGET": f'"{target}"'},
            words=f"{name} is a symbolic link",
        )
        for name in ("report.json", "predictions.json")
        for what, target in (
            ("/dev/zero", "/dev/zero"),
            ("/proc", "/proc/self/environ"),
            ("a host file", str(SECRET_PATH)),
        )
    },
    "parse bomb": Attack("parse_bomb", {}, kind="syntax", words="1,000 operators deep"),
    "parse bomb of lambdas": Attack(
        "parse_bomb", {"x": "lambda: " * 3_000 + "1"}, kind="syntax", words="operators deep"
    ),
}


def program(attack: Attack) -> str:
    code = source(attack.program)
    for name, value in attack.constants.items():
        lines = code.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
        lines[at] = f"{name} = {value}"
        code = "\n".join(lines) + "\n"
    return code


@pytest.fixture
def host_secret() -> Iterator[str]:
    """A host file that, if the host followed a link to it, would be believed as the report."""
    token = f"HOST-SECRET-{uuid.uuid4().hex}"
    SECRET_PATH.write_text(json.dumps({"status": "error", "kind": "shape", "message": token}))
    yield token
    SECRET_PATH.unlink(missing_ok=True)


def evaluate_watched(tool: Any, code: str) -> tuple[dict[str, Any], float]:
    """The tool's result, and how many MB the evaluator's memory grew (Python's peak, or the
    process's peak resident set, whichever grew more); fails if the evaluation hangs."""
    done: list[Any] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()

    def run() -> None:
        try:
            done.append(tool.invoke({"code": code}))
        except BaseException as exc:  # the evaluator must not raise: recorded, asserted below
            done.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=HANG_S)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert done, f"the evaluator hung for {HANG_S} s on the candidate's output"
    assert not isinstance(done[0], BaseException), f"the evaluator raised {done[0]!r}"
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    return dict(done[0]), max(peak / 2**20, rss_growth)


def attack_class(name: str) -> str:
    """An attack's class for `across_backends`: its program, but a link by what it points at
    (the host's reader meets a device, /proc and a host file alike; a host file is the worst)."""
    return "link" if ATTACKS[name].program == "link_output" else ATTACKS[name].program


# the first of each class is what the other backends meet: put the worst of a class first
CLASSES = {name: attack_class(name) for name in sorted(ATTACKS, key=lambda n: "host file" not in n)}


@pytest.mark.parametrize(("name", "backend"), across_backends(CLASSES), indirect=["backend"])
def test_hostile_output_is_a_classified_failure(
    backend: Backend,
    mnist: PreparedDataset,
    host_secret: str,
    tmp_path: Path,
    name: str,
) -> None:
    attack = ATTACKS[name]
    code = program(attack)
    # the sandbox's containment is what is measured: the static policy, which would refuse most
    # of these programs before any job, is off (its own tests show it refusing them); a parse
    # bomb is the precheck's own case and keeps it
    evaluator = Evaluator(mnist, backend, dict(QUICK), LIMITS, precheck=attack.kind == "syntax")
    result, growth_mb = evaluate_watched(make_train_candidate(evaluator), code)

    assert (result["status"], result["kind"]) == ("error", attack.kind), result
    if backend.name != "docker-warm" or attack.kind == "syntax":
        assert attack.words in result["message"], result
    assert growth_mb < MAX_GROWTH_MB, f"the evaluator grew by {growth_mb:.0f} MB"
    assert host_secret not in json.dumps(result), "a host file's content reached the result"
    archive = RunArchive(tmp_path / "run")
    archive.record_candidate(0, code, result)
    (row,) = archive.rows()
    assert (row["status"], row["kind"]) == ("error", attack.kind)
    assert host_secret not in json.dumps(row)
    print(f"{backend.name} | {name} | {result['kind']} | {growth_mb:.1f} MB | {result['message']}")
