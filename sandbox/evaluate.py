"""Evaluate one candidate: job directory → sandbox → classified result → score on the host.

The sandbox only ever sees the runner, the candidate, its hyperparameters and the dataset's public
part (training images + labels, validation images). It hands back predictions; accuracy is
computed here against validation labels that never left the host.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sandbox.backends.base import Backend, Job, Limits, RunOutcome
from sandbox.backends.workdir import bound_out_dir, make_job_dir, remove_job_dir
from sandbox.cache import ResultCache
from sandbox.code import code_hash, static_problem
from sandbox.data import OFFLINE_DATASET, DatasetUnavailable, PreparedDataset, prepare
from sandbox.dry_run import DRY_RUN_TIMEOUT_S, dry_run_config, read_probes, read_shape_trace
from sandbox.faults import BACKEND_FIX, InfrastructureFault, one_line
from sandbox.hardware import OVER_LIMIT, HardwareLimits, over_limit_message, violations
from sandbox.inside import RUNNER
from sandbox.job_report import Report, fault_before_candidate, read_report
from sandbox.result import FAILURE_KINDS, EvalResult, new_result
from sandbox.scoring import InvalidPredictions, accuracy, read_predictions
from sandbox.settings import SandboxSettings
from sandbox.untrusted import HostileOutput, copy_bounded
from sandbox.verify import Verification, measured_figures, unverified, verification_backend, verify

MAX_WEIGHTS_MB = 256  # a state_dict the final test keeps (the runner writes none larger)
# The runner's own version: a result it produced is only valid for the same runner.
RUNNER_VERSION = hashlib.sha256(RUNNER.read_bytes()).hexdigest()[:16]


class Evaluator:
    def __init__(
        self,
        dataset: PreparedDataset,
        backend: Backend,
        train_config: dict[str, Any],
        limits: Limits,
        cache: ResultCache | None = None,
        precheck: bool = True,
        hardware: HardwareLimits | None = None,
        keep_weights: Path | None = None,
        dry_run_timeout_s: float = DRY_RUN_TIMEOUT_S,
    ) -> None:
        self.dataset = dataset
        self.backend = backend
        self.train_config = train_config
        self.limits = limits
        self.cache = cache
        self.precheck = precheck  # reject unparsable / Net-less code without starting a sandbox
        self.hardware = hardware or HardwareLimits()  # checked here, after scoring
        self.keep_weights = keep_weights  # where a trained net's weights go (<code hash>.pt)
        self.dry_run_timeout_s = dry_run_timeout_s  # a dry run's wall-time limit (capped by limits)

    def runner_config(self) -> dict[str, Any]:
        meta = self.dataset.meta
        dataset_props = {k: meta[k] for k in ("num_classes", "input_shape", "mean", "std")}
        augment = {"flip": meta["flip"], "crop_pad": meta["crop_pad"]}
        export = {"export": True} if self.hardware.active() else {}  # for the verifier
        return {**dataset_props, **augment, **self.train_config, **export}

    def fingerprint(self) -> str:
        """Everything besides the code that decides a result: the cache key's other half."""
        key = {
            "runner": RUNNER_VERSION,
            "backend": self.backend.name,
            "image": getattr(self.backend, "image", None),  # Docker: whose torch trained it
            "dataset": self.dataset.root.name,
            "config": self.runner_config(),
            "timeout_s": self.limits.timeout_s,
            "memory_mb": self.limits.memory_mb,
            "gpus": bool(self.limits.gpus),
        }
        if self.hardware.active():  # only then: results cached without limits stay valid
            key["hardware"] = self.hardware.active()
        return json.dumps(key, sort_keys=True)

    def evaluate(self, code: str) -> EvalResult:
        """`prepare`, then (when that did not answer) the sandbox, then `record`.

        Raises InfrastructureFault when the sandbox failed before the candidate's code ran: that
        is no result of the candidate's, so nothing is recorded (or returned) for it.
        """
        digest, answer = self.prepare(code)
        if answer is not None:
            return answer
        result = self._evaluate_uncached(code, digest)
        self.record(digest, result)
        return result

    def prepare(self, code: str) -> tuple[str, EvalResult | None]:
        """An evaluation's first step, on this host: the code's hash, and its result when no
        sandbox is needed (a cached result, marked `cached`; a static problem, recorded).
        An executor that trains elsewhere (Ray) calls this, then `record`s what came back."""
        digest = code_hash(code)
        if self.cache is not None:
            hit = self.cache.get(digest, self.fingerprint())
            if hit is not None:
                hit["cached"] = True
                return digest, hit
        if self.precheck and (problem := static_problem(code)):
            labels = {"backend": self.backend.name, "dataset": self.dataset.name}
            result = new_result(problem[0], problem[1], digest, **labels)
            self.record(digest, result)
            return digest, result
        return digest, None

    def record(self, digest: str, result: EvalResult) -> None:
        """An evaluation's last step: keep a sandbox's result in the cache under its hash."""
        if self.cache is not None:
            self.cache.put(digest, self.fingerprint(), result)

    def dry_run(self, code: str) -> EvalResult:
        """Build `Net`, one forward pass on two dummy images, output shape checked; no training.

        The search's cheap stage, in the same sandbox as training: "ok" with no accuracy, or a
        classified failure whose message and `shape_trace` say where the shapes stopped fitting.
        Never cached: it is not a training result.
        """
        digest = code_hash(code)
        if self.precheck and (problem := static_problem(code)):
            labels = {"backend": self.backend.name, "dataset": self.dataset.name}
            return new_result(problem[0], problem[1], digest, **labels)
        return self._evaluate_uncached(code, digest, dry_run=True)

    def _evaluate_uncached(self, code: str, digest: str, dry_run: bool = False) -> EvalResult:
        labels = {"backend": self.backend.name, "dataset": self.dataset.name}
        started = time.monotonic()
        try:
            work = make_job_dir()
        except OSError as exc:
            raise InfrastructureFault(
                f"cannot create a job directory ({one_line(exc)})",
                "free space in the temp dir or point TMPDIR at a writable directory",
            ) from exc
        config = self.runner_config()
        limits = self.limits
        if dry_run:
            config.update(dry_run_config())
            limits = replace(limits, timeout_s=min(limits.timeout_s, self.dry_run_timeout_s))
        try:
            try:
                job = self._write_job(work, code, config, limits)
                bound_out_dir(job.out_dir, self.limits.scratch_mb)
            except OSError as exc:
                raise InfrastructureFault(
                    f"cannot write the job's files in {work} ({one_line(exc)})",
                    "free space in the temp dir or point TMPDIR at a writable directory",
                ) from exc
            try:
                outcome = self.backend.run(job)
            except InfrastructureFault:
                raise
            except Exception as exc:  # the backend is our code: its failure is never a result
                raise InfrastructureFault(
                    f"the {self.backend.name} sandbox failed ({one_line(exc)})", BACKEND_FIX
                ) from exc
            if outcome.reached_candidate is False:
                raise fault_before_candidate(self.backend.name, outcome, job)
            result = self._interpret(outcome, job, digest, dry_run)
        finally:
            remove_job_dir(work)
        result.update(labels)  # type: ignore[typeddict-item]
        result["wall_seconds"] = time.monotonic() - started
        return result

    def _write_job(self, work: Path, code: str, config: dict[str, Any], limits: Limits) -> Job:
        job_dir, out_dir = work / "job", work / "out"
        job_dir.mkdir()
        out_dir.mkdir()
        work.chmod(0o755)
        shutil.copyfile(RUNNER, job_dir / "runner.py")
        (job_dir / "candidate.py").write_text(code, encoding="utf-8")
        (job_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        for path in job_dir.iterdir():
            path.chmod(0o644)
        job_dir.chmod(0o755)
        return Job(job_dir, self.dataset.public_dir, out_dir, limits)

    def _interpret(
        self, outcome: RunOutcome, job: Job, digest: str, dry_run: bool = False
    ) -> EvalResult:
        # What the sandbox left is hostile input (`HostileOutput`): a bad file is refused,
        # and, unless the host itself saw a timeout or OOM, that is the candidate's failure.
        refused: HostileOutput | None = None
        try:
            report = read_report(job.out_dir)
        except HostileOutput as exc:
            report, refused = None, exc
        phase = f" during {report['phase']}" if report and report["phase"] else ""
        tail = "\n".join(outcome.log_tail.strip().splitlines()[-12:])
        if outcome.timed_out:
            limit = job.limits.timeout_s
            return new_result(
                "timeout", f"stopped at the wall-time limit of {limit:g} s", digest, traceback=tail
            )
        if outcome.oom_killed:
            mb = self.limits.memory_mb
            return new_result(
                "oom", f"killed at the memory limit of {mb} MiB{phase}", digest, traceback=tail
            )
        if refused is not None:
            return new_result("runtime", f"output refused: {refused}", digest, traceback=tail)
        trace = read_shape_trace(report["shape_trace"]) if report else None
        traced = {"shape_trace": trace} if trace else {}
        if report is not None and report["status"] == "ok" and dry_run:
            message = f"dry run ok: output (2, {self.dataset.num_classes})"
            probes = read_probes(report["probes"])  # dead layers, fingerprint
            return new_result("ok", message, digest, params=report["params"], **traced, **probes)
        if report is not None and report["status"] == "ok":
            scored = self._score(report, job.out_dir, digest, outcome)
            lazy = read_probes({"unused_lazy": report["probes"].get("unused_lazy")})
            scored.update(lazy)  # type: ignore[typeddict-item]
            return scored
        if report is not None and report["kind"] in FAILURE_KINDS:
            return new_result(
                str(report["kind"]),
                report["message"],
                digest,
                traceback=report["traceback"],
                params=report["params"],
                flops=report["flops"],
                **traced,
            )
        sig = _signal_of(outcome.exit_code)
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return new_result(
                "killed", f"the process was killed by signal {name}", digest, traceback=tail
            )
        return new_result(
            "runtime",
            f"the process exited with code {outcome.exit_code} before reporting a result"
            " (did the candidate exit the interpreter?)",
            digest,
            traceback=tail,
        )

    def _score(self, report: Report, out_dir: Path, digest: str, outcome: RunOutcome) -> EvalResult:
        claimed = {
            "params": report["params"],
            "flops": report["flops"],
            "peak_memory_mb": report["peak_memory_mb"],
            "latency_ms": report["latency_ms"],
        }
        figures = measured_figures(claimed, outcome.peak_memory_mb, None)
        # Only a pass is worth forging: a net whose own figures break a limit is over it as it
        # says, and only one that claims to fit is measured again, outside its process.
        if self.hardware.active() and not violations(self.hardware, figures.metrics):
            figures = measured_figures(claimed, outcome.peak_memory_mb, self._verification(out_dir))
        try:
            predictions = figures.predictions
            if predictions is None:
                predictions = read_predictions(
                    out_dir / "predictions.json", self.dataset.n_val, self.dataset.num_classes
                )
            acc = accuracy(predictions, self.dataset.val_labels())
        except InvalidPredictions as exc:
            return new_result("runtime", f"the run reported success but {exc}", digest)
        metrics = figures.metrics
        if self.keep_weights is not None:
            keep_weights(out_dir / "weights.pt", self.keep_weights / f"{digest}.pt")
        kind, message = "ok", f"trained; validation accuracy {acc:.4f}"
        if over := violations(self.hardware, metrics) or unverified(self.hardware, figures):
            kind, message = OVER_LIMIT, over_limit_message(over, acc)
        extra = {} if figures.seconds is None else {"verify_seconds": figures.seconds}
        return new_result(
            kind,
            message,
            digest,
            val_accuracy=acc,
            train_seconds=report["train_s"],
            measured_by=figures.measured_by,
            **metrics,
            **extra,
        )

    def _verification(self, out_dir: Path) -> Verification | None:
        """The trained net measured in a fresh sandbox (`verify`), when a hardware
        limit needs figures the candidate cannot forge; None when no limit is active."""
        if not self.hardware.active():
            return None
        backend = verification_backend(self.backend)
        data, n_val = self.dataset.public_dir, self.dataset.n_val
        return verify(backend, out_dir, self.runner_config(), data, n_val, self.limits)


def keep_weights(source: Path, dest: Path) -> bool:
    """Copy a state_dict the runner wrote, if it is a plain file of sane size; never load it."""
    return copy_bounded(source.parent, source.name, dest, MAX_WEIGHTS_MB * 2**20)


def _signal_of(exit_code: int | None) -> int | None:
    """The signal that ended the process: Popen says -N; shells, bwrap and Docker say 128+N."""
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    if 128 < exit_code < 160:
        return exit_code - 128
    return None


def limits_for(settings: SandboxSettings) -> Limits:
    """The per-job limits that `NASLOOP_*` settings describe."""
    return Limits(
        timeout_s=settings.timeout_s,
        memory_mb=settings.memory_mb,
        pids=settings.pids_limit,
        scratch_mb=settings.scratch_mb,
        gpus=settings.gpu_ids(),
    )


def evaluator_from_settings(settings: SandboxSettings, announce: bool = True) -> Evaluator:
    """The evaluator that `NASLOOP_*` settings describe: dataset prepared, backend chosen."""
    from sandbox.backends.select import make_backend

    dataset = prepare_with_fallback(settings, announce)
    limits = limits_for(settings)
    backend = make_backend(
        settings.sandbox, settings.image, announce=announce, warm=settings.warm_worker
    )
    cache = ResultCache(settings.runs_dir / "eval_cache.sqlite")
    hardware = settings.hardware_limits()
    return Evaluator(dataset, backend, settings.train_config(), limits, cache, hardware=hardware)


def prepare_with_fallback(settings: SandboxSettings, announce: bool = True) -> PreparedDataset:
    """The configured dataset; the offline one only when the *default* cannot be had here.

    A fresh machine without internet can still run the embedded defaults end to end, and says so;
    a dataset the user named explicitly is never swapped for another.
    """
    val_size, seed = settings.val_size, settings.split_seed
    try:
        return prepare(settings.dataset, settings.data_dir, val_size=val_size, seed=seed)
    except DatasetUnavailable as exc:
        if "dataset" in settings.model_fields_set:
            raise
        if announce:
            print(
                f"nasloop: WARNING: the default dataset is unavailable ({exc}); using the offline "
                f"dataset {OFFLINE_DATASET} instead (set NASLOOP_DATASET to choose)",
                file=sys.stderr,
                flush=True,
            )
        return prepare(OFFLINE_DATASET, settings.data_dir, val_size=val_size, seed=seed)


def held_out_evaluator(
    search: Evaluator, settings: SandboxSettings, epochs: int, keep_weights: Path | None
) -> Evaluator:
    """The final test's evaluator: `search`'s training and limits, scored on the test split.

    Its dataset is the held-out view (`held_out_view`): the test images go into the sandbox
    as "validation" images here and nowhere else, their labels stay on the host. Candidates train
    for `epochs` (the wall-time limit grows with them), results are not cached, no hardware limit
    applies (the search enforced them), and the runner writes the trained weights, which are kept
    under `keep_weights` when it is given. One container per candidate: its whole out dir comes
    back, weights included.
    """
    from dataclasses import replace

    from sandbox.backends.select import make_backend
    from sandbox.held_out import held_out_view

    base_epochs = max(int(search.train_config.get("epochs") or 1), 1)
    longer = max(epochs / base_epochs, 1.0)
    limits = replace(search.limits, timeout_s=search.limits.timeout_s * longer)
    config = {
        **search.train_config,
        "epochs": epochs,
        "save_weights": keep_weights is not None,
        "max_weights_mb": MAX_WEIGHTS_MB,
    }
    backend = make_backend(settings.sandbox, settings.image, announce=False)
    view = held_out_view(search.dataset)
    return Evaluator(view, backend, config, limits, cache=None, keep_weights=keep_weights)
