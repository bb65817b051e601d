"""The small, typed result of evaluating one candidate: what the search and the LLMs see."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, get_args

from sandbox.inert import inert

MESSAGE_CHARS = 2_000  # of a result's message, as the runner's report may carry it
TRACEBACK_CHARS = 4_000  # of its traceback (its last lines)

SandboxFailureKind = Literal[
    "syntax",  # the module does not parse
    "no_net",  # no `Net(nn.Module)` class
    "import",  # an import failed (missing package, bad name)
    "shape",  # tensor shapes do not fit, or the output is not (B, num_classes)
    "oom",  # out of memory (the job's limit, or the GPU)
    "timeout",  # wall-time limit reached
    "nan",  # the training loss became NaN/inf
    "runtime",  # any other exception, or the process exited without a report
    "killed",  # terminated by a signal (segfault, process limit, ...)
    "over_limit",  # trained, but over a hardware limit (`HardwareLimits`); accuracy recorded
]
# What a runner's report may claim (checked on the host by the Evaluator); the same list as the
# runner's own, which must travel alone and cannot import it
FAILURE_KINDS: tuple[str, ...] = get_args(SandboxFailureKind)
# Every failure a result can carry: the sandbox's, and the search's own
FailureKind = (
    SandboxFailureKind
    | Literal["no_code"]  # the LLM's reply held no Python code (set by the search, no sandbox)
    | Literal["duplicate"]  # a program this run already tried, repeated on every re-ask: never
    # trained again (set by the search's novelty check; no sandbox)
    | Literal["bad_edit"]  # the reply's edit blocks could not be applied to the code it was
    # shown (a SEARCH not in the code, or in it twice; no sandbox)
    | Literal["dead_layers"]  # the dry run passed, but layers of the net get no gradient: the
    # forward never reaches them (set by the search's check step)
    | Literal["forbidden"]  # the program reaches for what no network needs (os, subprocess,
    # sockets, eval, open...): refused by the static policy before any sandbox
)


class ShapeStep(TypedDict):
    """One module call of a checked forward pass (the runner's `ShapeTrace`), in call order."""

    module: str  # its path in the net ("features.0"); "" is Net.forward itself, "?" a stray module
    type: str  # its class name ("Conv2d")
    out: list[int] | None  # the output's shape; None when the call failed or returned no tensor
    failed: NotRequired[bool]  # the call that raised (the last step, when there is one)
    in_shape: NotRequired[list[int]]  # the failed call's input shape
    in_features_expected: NotRequired[int]  # a failed Linear fed (B, F): F, its right in_features


class RayPlacement(TypedDict):
    """Where a Ray task evaluated a candidate (`RayExecutor`)."""

    node_id: str
    worker_id: str
    host: str
    pid: int
    gpus: str  # the GPU ids Ray gave the task, or "none"


class EvalResult(TypedDict):
    """One candidate's outcome, the same type from the Evaluator through the `train_candidate`
    tool to the search's state (`Candidate.result`) and the archive."""

    status: Literal["ok", "error"]
    kind: str  # "ok" or a FailureKind
    message: str  # one line an LLM can act on
    traceback: str  # a short tail, empty when there is none
    val_accuracy: float | None  # computed on the host from predictions; None on failure
    params: int | None
    flops: int | None  # forward FLOPs for one image
    train_seconds: float | None
    peak_memory_mb: float | None  # see `HardwareLimits` for what is measured where
    latency_ms: float | None  # median batch-1 forward on the training device
    wall_seconds: float  # the whole evaluation, sandbox start to score
    code_hash: str
    backend: str
    dataset: str
    cached: bool
    # set when the candidate trained (verified metrics): metric -> "verifier", "cgroup" or
    # "self-reported"; and what measuring outside the candidate's process cost, when it ran
    measured_by: NotRequired[dict[str, str]]
    verify_seconds: NotRequired[float]
    # a forward-pass check's module-by-module shapes: a dry run's, or a failed forward's
    shape_trace: NotRequired[list[ShapeStep]]
    # what a passed dry run found (`read_probes`): the modules no gradient reaches and their
    # parameter count, lazy modules the forward never called, and the architecture fingerprint
    # the novelty check compares (the runner's docstring says how it is computed)
    dead_layers: NotRequired[list[str]]
    dead_params: NotRequired[int]
    unused_lazy: NotRequired[list[str]]
    fingerprint: NotRequired[str]
    # set only by the Ray executor:
    executor: NotRequired[str]  # "ray"
    lost: NotRequired[bool]  # its worker died on every try: failed, not cached
    ray: NotRequired[RayPlacement]


def new_result(kind: str, message: str, code_hash: str, **extra: object) -> EvalResult:
    """A result with the given kind ("ok" or a failure) and no metrics unless `extra` sets them."""
    result = EvalResult(
        status="ok" if kind == "ok" else "error",
        kind=kind,
        message=message,
        traceback="",
        val_accuracy=None,
        params=None,
        flops=None,
        train_seconds=None,
        peak_memory_mb=None,
        latency_ms=None,
        wall_seconds=0.0,
        code_hash=code_hash,
        backend="",
        dataset="",
        cached=False,
    )
    result.update(extra)  # type: ignore[typeddict-item]
    # The one boundary for text: a message or traceback may carry what a candidate printed or
    # raised, so nothing leaves here with a control or invisible formatting character in it.
    result["message"] = inert(result["message"], MESSAGE_CHARS)
    result["traceback"] = inert(result["traceback"], TRACEBACK_CHARS, keep_tail=True)
    return result
