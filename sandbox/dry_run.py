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

from typing import Any

from sandbox.inert import inert
from sandbox.result import ShapeStep

DRY_RUN_TIMEOUT_S = 120.0  # generous: one container start took over 60 s on a crowded machine
MAX_STEPS = 64  # the runner keeps at most 48 (12 first + 36 last); anything more is forged
MAX_NAME_CHARS = 200
MAX_DIMS = 8


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
        module=inert(module, MAX_NAME_CHARS), type=inert(kind, MAX_NAME_CHARS), out=out
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


def failed_step(trace: list[ShapeStep] | None) -> ShapeStep | None:
    """The step that raised, if the trace has one (it is the last)."""
    if trace and trace[-1].get("failed"):
        return trace[-1]
    return None
