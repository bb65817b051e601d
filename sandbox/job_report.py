"""The runner's report.json, read back as hostile input: bounded, typed, every number in range;
and, for a job that never reached the candidate, the infrastructure fault it tells of.

The runner writes the report, but the candidate runs in the same process and can rewrite it, so
the report is only ever a claim: status and failure kind pick the message, and its metrics are
kept only when they are plausible numbers (the rules for hostile output, beside `HostileOutput`,
say why and how it is read). Missing fields are None; a field of the wrong type or out of range
makes the whole report hostile (`HostileOutput`), because our runner never writes one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from sandbox.faults import InfrastructureFault, fix_for
from sandbox.untrusted import (
    MAX_COUNT,
    MAX_MEGABYTES,
    MAX_MILLISECONDS,
    MAX_REPORT_BYTES,
    MAX_REPORT_DEPTH,
    MAX_REPORT_ITEMS,
    MAX_SECONDS,
    TEXT_LIMITS,
    HostileOutput,
    parse_json,
    read_bounded,
    short,
)

if TYPE_CHECKING:
    from sandbox.backends.base import Job, RunOutcome

REPORT = "report.json"
PROBE_KEYS = ("dead_layers", "dead_params", "unused_lazy", "fingerprint")


class Report(TypedDict):
    status: str | None
    kind: str | None
    phase: str | None
    message: str
    traceback: str
    params: int | None
    flops: int | None
    peak_memory_mb: float | None
    peak_gpu_memory_mb: float | None
    latency_ms: float | None
    train_s: float | None
    shape_trace: Any  # raw; read_shape_trace keeps well-formed steps
    # raw, read by read_probes: a passed dry run's dead layers and fingerprint
    probes: dict[str, Any]


def read_report(out_dir: Path) -> Report | None:
    """The checked report of a job, None when none was written; HostileOutput when it is bad."""
    data = read_bounded(out_dir, REPORT, MAX_REPORT_BYTES)
    if data is None:
        return None
    raw = parse_json(data, REPORT, MAX_REPORT_DEPTH, MAX_REPORT_ITEMS)
    if not isinstance(raw, dict):
        raise HostileOutput(f"{REPORT} holds a JSON {type(raw).__name__}, not an object")
    return checked_report(raw)


def checked_report(raw: dict[str, Any]) -> Report:
    """The fields the host uses, each checked; HostileOutput names the first bad one."""
    texts = {key: _text(raw.get(key), key, limit) for key, limit in TEXT_LIMITS.items()}
    timings = raw.get("timings")
    if timings is not None and not isinstance(timings, dict):
        raise HostileOutput(f"{REPORT}: timings is {short(timings)}, not an object")
    train_s = _amount((timings or {}).get("train_s"), "timings.train_s", MAX_SECONDS)
    return Report(
        status=texts["status"],
        kind=texts["kind"],
        phase=texts["phase"],
        message=texts["message"] or "",
        traceback=texts["traceback"] or "",
        params=_count(raw.get("params"), "params", MAX_COUNT),
        flops=_count(raw.get("flops"), "flops", MAX_COUNT),
        peak_memory_mb=_amount(raw.get("peak_memory_mb"), "peak_memory_mb", MAX_MEGABYTES),
        peak_gpu_memory_mb=_amount(
            raw.get("peak_gpu_memory_mb"), "peak_gpu_memory_mb", MAX_MEGABYTES
        ),
        latency_ms=_amount(raw.get("latency_ms"), "latency_ms", MAX_MILLISECONDS),
        train_s=train_s,
        shape_trace=raw.get("shape_trace"),
        probes={k: raw.get(k) for k in PROBE_KEYS},
    )


def _text(value: Any, key: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HostileOutput(f"{REPORT}: {key} is {short(value)}, not a string")
    # the traceback's end explains the failure; everything else reads from the start
    return value[-limit:] if key == "traceback" else value[:limit]


def _count(value: Any, key: str, most: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= most:
        raise HostileOutput(f"{REPORT}: {key} = {short(value)} is not an integer in 0..{most:.0e}")
    return value


def _amount(value: Any, key: str, most: float) -> float | None:
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0 <= value <= most:  # NaN compares false, infinity is over `most`
        raise HostileOutput(f"{REPORT}: {key} = {short(value)} is not a number in 0..{most:.0e}")
    return float(value)


def fault_before_candidate(backend: str, outcome: RunOutcome, job: Job) -> InfrastructureFault:
    """The job ended before the runner reached the candidate: say why, in one line.

    No candidate code ran, so the report and the log are ours and can be believed (still read
    with the same bounds: a broken sandbox is no reason to read without them).
    """
    try:
        report = read_report(job.out_dir)
    except HostileOutput:
        report = None
    lines = [line.strip() for line in outcome.log_tail.splitlines() if line.strip()]
    if outcome.timed_out:
        why = f"no candidate code was reached within the {job.limits.timeout_s:g} s limit"
    elif report is not None and report["message"]:
        why = report["message"]
    else:
        why = lines[-1] if lines else f"exit code {outcome.exit_code}, no output"
    return InfrastructureFault(
        f"the {backend} sandbox failed before the candidate's code was reached ({why[:300]})",
        fix_for(why),
    )
