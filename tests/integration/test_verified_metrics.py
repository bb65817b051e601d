"""Forged metrics (issue 18): a net that rewrites its own report gets its honest twin's verdict.

forge_metrics.py trains the same net as honest_twin.py and rewrites the runner's report on its
way out, claiming a tiny parameter count, FLOP count, latency or peak memory. With the matching
hardware limit on, both twins must get the same verdict, or the forger a "cannot be verified"
failure: the host scores and measures the exported net in a fresh sandbox (sandbox/verify.py)
and reads peak memory from the job's cgroup: on every backend, where the host can see it (as
root; for a container per job, an engine with the cgroupfs driver), which this test then requires.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from sandbox.backends.base import Backend
from sandbox.data import PreparedDataset
from sandbox.evaluate import Evaluator
from sandbox.hardware import HardwareLimits
from tests.helpers.sandbox_jobs import QUICK, across_backends, limits, source

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("nothing_left_behind")]

LIMITS = limits(timeout_s=180)
HONEST_PARAMS = 20_490  # honest_twin.py's Net, counted by hand: 160 + 4,640 + 15,690

# limit -> (the forged claim, a bound the honest twin breaks)
TWINS: dict[str, tuple[str, str, HardwareLimits]] = {
    "params": ("params", "1000", HardwareLimits(max_params=10_000)),
    "flops": ("flops", "1000", HardwareLimits(max_flops=1_000_000)),
    "latency": ("latency_ms", "0.001", HardwareLimits(max_latency_ms=0.001)),
    "peak memory": ("peak_memory_mb", "1.0", HardwareLimits(max_peak_memory_mb=64)),
}


def forger(field: str, value: str) -> str:
    code = source("forge_metrics")
    code = code.replace('FIELD = "params"', f'FIELD = "{field}"', 1)
    return code.replace("VALUE = 1000", f"VALUE = {value}", 1)


def evaluate(sandbox: Backend, data: PreparedDataset, code: str, limits: HardwareLimits) -> Any:
    evaluator = Evaluator(data, sandbox, dict(QUICK), LIMITS, hardware=limits, precheck=False)
    return dict(evaluator.evaluate(code))


def host_reads_cgroups(sandbox: Backend, docker_client: Any) -> bool:
    """Whether the host can read this backend's job cgroups here: as root, and for a container
    per job, from an engine with the cgroupfs driver (see sandbox/backends/container_memory.py)."""
    if os.geteuid() != 0:
        return False
    return sandbox.name != "docker" or docker_client.info()["CgroupDriver"] == "cgroupfs"


# params, FLOPs and latency are measured by the verifier's fresh job, alike on every backend; peak
# memory is read from each backend's own cgroups
MEASURED_BY = {limit: "cgroup" if limit == "peak memory" else "verifier" for limit in TWINS}


@pytest.mark.parametrize(("limit", "backend"), across_backends(MEASURED_BY), indirect=["backend"])
def test_a_forging_twin_gets_its_honest_twins_verdict(
    backend: Backend,
    mnist: PreparedDataset,
    docker_client: Any,
    limit: str,
) -> None:
    field, claim, limits = TWINS[limit]
    honest = evaluate(backend, mnist, source("honest_twin"), limits)
    forged = evaluate(backend, mnist, forger(field, claim), limits)
    for result in (honest, forged):
        print(
            f"{backend.name} | {limit} | {result['kind']} | {result.get('measured_by')} | "
            f"verify {result.get('verify_seconds', 0):.1f} s of {result['wall_seconds']:.1f} s | "
            f"{result['message']}"
        )
    assert honest["kind"] == "over_limit", honest  # by its own, true figures
    assert forged["kind"] == "over_limit", forged  # never the `ok` its claim would earn
    if field == "peak_memory_mb" and host_reads_cgroups(backend, docker_client):
        assert forged["measured_by"][field] == honest["measured_by"][field] == "cgroup", forged
    if forged["measured_by"][field] == "self-reported":  # nothing outside the candidate measured it
        assert f"{field} cannot be verified" in forged["message"], forged
    else:  # measured outside the candidate: the honest twin's figure, not the claim
        assert forged[field] != float(claim), forged
        assert "cannot be verified" not in forged["message"], forged
        assert field.split("_")[0] in forged["message"].split("(")[0].lower(), forged


def test_verified_figures_replace_the_forged_ones_within_a_limit(
    backend: Backend,
    mnist: PreparedDataset,
) -> None:
    """Within a generous limit both twins pass, with the verifier's count, not the claim; and the
    cost of measuring outside the candidate is the difference to a run without limits."""
    generous = HardwareLimits(max_params=1_000_000, max_flops=10**9)
    plain = evaluate(backend, mnist, source("honest_twin"), HardwareLimits())
    honest = evaluate(backend, mnist, source("honest_twin"), generous)
    forged = evaluate(backend, mnist, forger("params", "1000"), generous)
    assert plain["kind"] == "ok" and plain["params"] == HONEST_PARAMS, plain
    for result in (honest, forged):
        assert result["kind"] == "ok", result
        assert result["measured_by"]["params"] == "verifier", result
        assert result["params"] == HONEST_PARAMS and result["flops"] == plain["flops"], result
        assert abs(result["val_accuracy"] - plain["val_accuracy"]) < 0.05
    print(
        f"{backend.name} | cost of verified measurement | without limits "
        f"{plain['wall_seconds']:.1f} s | with {honest['wall_seconds']:.1f} s | verifier job "
        f"{honest['verify_seconds']:.1f} s"
    )
