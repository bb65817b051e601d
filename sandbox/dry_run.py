"""The dry run's host side: what a `"mode": "dry_run"` report may say, read as hostile input.

A dry run is the search's cheap stage before training (Evaluator.dry_run): in the same sandbox as
training, the runner imports the candidate, builds `Net(num_classes)`, runs one forward pass on two
dummy images of the dataset's shape, checks the output is (2, num_classes), and stops. A failed
forward pass comes back with a shape trace (the runner's `ShapeTrace`): each module call's output
shape up to the one that raised, which a host-side fixer can act on (`mechanical_fix`).

API: `Evaluator.dry_run(code) -> EvalResult` (status "ok", kind "ok", message "dry run ok: output
(2, C)", val_accuracy None; or a classified failure: syntax, no_net, import, shape, runtime, oom,
timeout, killed) with `shape_trace: list[ShapeStep]` when the forward pass ran (`failed_step`
picks the step that raised); `LocalExecutor.dry_run` / `RayExecutor.dry_run` run it in this
machine's sandbox, queued with training.

A dry run that passed also reports (the runner's probe_dry_run; `read_probes` here) the
modules no gradient reaches from a loss on the output (`dead_layers`, `dead_params`), lazy
modules the forward never called (`unused_lazy`), and the architecture fingerprint:
the search's check step fails dead layers (agent/check/dead_layers.py) and compares fingerprints
(agent/check/step.py). Their cost, from the runner's own timings (median of 5 dry runs each, 2-core
machine at load average ~4.5, 2 x 1x28x28 images): a 0.5B coder's MLP that skips `features`:
forward check 16 ms, fingerprint 16 ms, dead layers 92 ms (runner total 127 ms); the same with
its conv layers run: 110 / 88 / 337 ms (534 ms); a 3-block BN CNN: 364 / 92 / 97 ms (647 ms).
So the fingerprint is about one more forward pass, the dead-layer step a forward and a backward,
both small next to a container's or an interpreter's start.

It is not a training result: never cached (a later training of the same code must really run),
no accuracy. The report is the candidate's process's word, so everything in it is checked here
for type and size; a candidate that forges "ok" only earns the training run, which checks again.

Cost, measured with `python -m bench.dry_run` on 2026-12-02 (2-core Xeon, no GPU, mnist5k
1x28x28, the reference net and the same net with a wrong head; the machine shared with about
seven other helpers' jobs, load average 3-24, so wall times measure the queue as much as the
work):
- warm worker, median of 20: 0.26 s (ok) and 0.31 s (shape error) at load ~3-6; 0.88 s and
  0.94 s at load ~12; 1.49 s and 1.39 s at load ~16; 3.21 s and 3.60 s at load ~22. CPU time per
  dry run (host process + the warm container's cgroup): 0.10-0.14 s, ok or shape error. So under
  1 s, here even with a load average of 12 on the two cores.
- a container per candidate, median of 10: 2.04 s (ok) and 2.08 s (shape error) at load ~3-5,
  24.8 s and 29.8 s at load ~16; each pays a container start, an interpreter and torch's import.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.inert import inert
from sandbox.result import ShapeStep

DRY_RUN_TIMEOUT_S = 120.0  # generous: one container start took over 60 s on a crowded machine
MAX_STEPS = 64  # the runner keeps at most 48 (12 first + 36 last); anything more is forged
MAX_NAME_CHARS = 200
MAX_DIMS = 8
MAX_NAMES = 32  # module names in a probe's list (the runner keeps as many)
MAX_PARAMS = 10**12
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def dry_run_config() -> dict[str, Any]:
    """The runner config keys that turn a training job into a dry run."""
    return {"mode": "dry_run"}


def read_shape_trace(raw: object) -> list[ShapeStep] | None:
    """The report's `shape_trace`, keeping only well-formed steps; None when there is none."""
    if not isinstance(raw, list) or not raw:
        return None
    steps: list[ShapeStep] = []
    for item in raw[:MAX_STEPS]:
        step = _read_step(item)
        if step is not None:
            steps.append(step)
    return steps or None


def _read_step(item: object) -> ShapeStep | None:
    if not isinstance(item, dict):
        return None
    module, kind = item.get("module"), item.get("type")
    if not isinstance(module, str) or not isinstance(kind, str):
        return None
    out = _shape(item.get("out"))
    # module paths and type names are the candidate's words too: made inert like its messages
    step = ShapeStep(
        module=inert(module[:MAX_NAME_CHARS]), type=inert(kind[:MAX_NAME_CHARS]), out=out
    )
    if item.get("failed") is True:
        step["failed"] = True
        step["out"] = None
        in_shape = _shape(item.get("in_shape"))
        if in_shape is not None:
            step["in_shape"] = in_shape
        expected = item.get("in_features_expected")
        if type(expected) is int and expected > 0:
            step["in_features_expected"] = expected
    return step


def _shape(value: object) -> list[int] | None:
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        return None
    if not all(type(d) is int and d >= 0 for d in value):
        return None
    return list(value)


def read_probes(raw: object) -> dict[str, Any]:
    """What a passed dry run found beyond the shape (sandbox/inside/runner.py's probe_dry_run), each
    field kept only when well-formed: module names (at most MAX_NAMES, each cut to
    MAX_NAME_CHARS), a parameter count, a 64-hex fingerprint."""
    if not isinstance(raw, dict):
        return {}
    found: dict[str, Any] = {}
    for key in ("dead_layers", "unused_lazy"):
        names = raw.get(key)
        if isinstance(names, list):
            kept = [n[:MAX_NAME_CHARS] for n in names[:MAX_NAMES] if isinstance(n, str)]
            if kept:
                found[key] = kept
    count = raw.get("dead_params")
    if "dead_layers" in found and type(count) is int and 0 <= count <= MAX_PARAMS:
        found["dead_params"] = count
    fingerprint = raw.get("fingerprint")
    if isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint):
        found["fingerprint"] = fingerprint
    return found


def failed_step(trace: list[ShapeStep] | None) -> ShapeStep | None:
    """The step that raised, if the trace has one (it is the last)."""
    if trace and trace[-1].get("failed"):
        return trace[-1]
    return None
