"""Find, or build once, llama.cpp's `llama-server`: `python -m agent llama_build [--force]`.

Where a binary comes from, first match wins:

1. `NASLOOP_LLAMA_SERVER`, a path to a binary the user already has (a GPU build, a distro package);
2. this module's cache, `~/.cache/nasloop/llama.cpp/<version>/llama-server` (`$XDG_CACHE_HOME`
   is honoured), where step 4 puts what it builds;
3. a `llama-server` on the PATH;
4. a build from source (about 10 min on 2 cores), written to the cache, so a machine builds once.

Why this source: the llama.cpp tree vendored inside the `llama-cpp-python` sdist on PyPI. It is a
pinned, reviewed snapshot that pip can fetch wherever pip works, with no git and no hub. We build
only its C++ `llama-server` target, not the Python bindings: llama.cpp's own server honours
`max_completion_tokens` and `json_schema`, while the server bundled with llama-cpp-python ignores
the first (a reply then runs to the context's end) and rejects the second.

Build flags, and why:
- `GGML_NATIVE=OFF`: a `-march=native` build died with SIGILL on our CI boxes (the compiler saw
  CPU features the VM does not really expose); the portable build picks its kernels at run time.
- `LLAMA_CURL=OFF`: no libcurl headers needed; `python -m agent serve` fetches models, not the
  server.
- `BUILD_SHARED_LIBS=OFF`: one self-contained file that can be copied into the cache.

A GPU build (`cuda=True`, which the model choice asks for when it finds a CUDA GPU and `nvcc`)
adds `-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native`: kernels for the GPU that is here only,
which keeps the CUDA compile to minutes instead of one pass per architecture.
`NASLOOP_LLAMA_CMAKE_ARGS` adds flags of the user's own. Each flag set is cached under its own
directory (`<version>-<hash of the flags>`), next to the plain one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from sandbox.locks import exclusive

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaBuildError",
    "build_llama_server",
    "cached_llama_server",
    "ensure_llama_server",
    "find_llama_server",
]

# The sdist whose vendored llama.cpp we build. Bumping it means a new build (and cache dir).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BINARY = "llama-server"
_BASE_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
)


class LlamaBuildError(RuntimeError):
    """No llama-server binary, and building one failed; the message says why and what to do."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasloop" / "llama.cpp"


CUDA_CMAKE_ARGS = ("-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=native")


def _extra_cmake_args(cuda: bool = False) -> list[str]:
    gpu = list(CUDA_CMAKE_ARGS) if cuda else []
    return gpu + shlex.split(os.environ.get("NASLOOP_LLAMA_CMAKE_ARGS", ""))


def cached_llama_server(version: str = LLAMA_CPP_PYTHON_VERSION, *, cuda: bool = False) -> Path:
    """Where the build for `version` (and the current extra cmake flags) lives in the cache."""
    extra = _extra_cmake_args(cuda)
    tag = version
    if extra:
        tag += "-" + hashlib.sha256(" ".join(extra).encode()).hexdigest()[:8]
    return cache_root() / tag / BINARY


def find_llama_server(*, cuda: bool = False) -> Path | None:
    """An existing binary (env, cache, PATH; see the module docstring), or None."""
    configured = os.environ.get("NASLOOP_LLAMA_SERVER")
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LlamaBuildError(
                f"NASLOOP_LLAMA_SERVER={configured!r} is not an executable file: "
                "fix the path, or unset it to use (or build) the cached llama-server"
            )
        return path
    cached = cached_llama_server(cuda=cuda)
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    if cuda:
        return None  # a llama-server on the PATH may be a CPU build: build our own GPU one
    on_path = shutil.which(BINARY)
    return Path(on_path) if on_path else None


def ensure_llama_server(*, log: bool = True, cuda: bool = False) -> Path:
    """An existing binary, or a fresh build of one (slow: minutes); LlamaBuildError on failure."""
    return find_llama_server(cuda=cuda) or build_llama_server(log=log, cuda=cuda)


def build_llama_server(
    version: str = LLAMA_CPP_PYTHON_VERSION,
    *,
    force: bool = False,
    log: bool = True,
    cuda: bool = False,
) -> Path:
    """Build `llama-server` from the llama-cpp-python `version` sdist into the cache.

    Idempotent, and safe when two processes ask at once: a lock file serialises builders, and
    the binary appears in the cache in one rename, so nobody sees half a file.
    """
    target = cached_llama_server(version, cuda=cuda)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / ".lock"):
        if target.is_file() and not force:
            return target
        for tool in ("cmake", "c++"):
            if shutil.which(tool) is None:
                raise LlamaBuildError(
                    f"building llama-server needs `{tool}`, which is not installed "
                    "(Debian/Ubuntu: apt-get install cmake g++), or set NASLOOP_LLAMA_SERVER "
                    "to an existing llama-server binary"
                )
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="nasloop-llama-") as tmp:
            work = Path(tmp)
            source = _fetch_source(version, work, log)
            build = work / "build"
            jobs = str(os.cpu_count() or 1)
            extra = _extra_cmake_args(cuda)
            _run(
                ["cmake", "-S", str(source), "-B", str(build), *_BASE_CMAKE_ARGS, *extra],
                "configuring llama.cpp",
                log,
            )
            _run(
                ["cmake", "--build", str(build), "--target", BINARY, "-j", jobs],
                f"compiling {BINARY} ({jobs} jobs; ~10 min on 2 cores)",
                log,
            )
            built = build / "bin" / BINARY
            if not built.is_file():
                raise LlamaBuildError(f"the build finished but {built} is missing")
            staging = target.with_name(f".{BINARY}.{os.getpid()}")
            shutil.copy2(built, staging)
            staging.chmod(0o755)
            staging.replace(target)
        if log:
            size = target.stat().st_size / 1e6
            took = time.monotonic() - started
            _say(f"built {target} ({size:.1f} MB) in {took:.0f} s")
        return target


# -- helpers -------------------------------------------------------------------------------------


def _fetch_source(version: str, work: Path, log: bool) -> Path:
    """Download the sdist with pip and unpack only its vendored llama.cpp; return that dir."""
    spec = f"llama-cpp-python=={version}"
    # pip also installs the sdist's build backend in a throwaway env to read its metadata (~1 min)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [*pip, "download", "--no-binary", ":all:", "--no-deps", "-d", str(work), spec],
        f"downloading the {spec} sdist (its vendored llama.cpp is the source)",
        log,
    )
    archives = sorted(work.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        raise LlamaBuildError(f"pip download {spec} left no sdist in {work}")
    prefix = f"{archives[0].name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise LlamaBuildError(f"{archives[0].name} has no vendor/llama.cpp")
        tar.extractall(work / "src", members=members, filter="data")
    return work / "src" / prefix


def _run(cmd: list[str], what: str, log: bool) -> None:
    if log:
        _say(what)
    # output goes to a file: a failure shows its tail, a success stays quiet
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            out.seek(0)
            tail = "".join(out.readlines()[-25:])
            raise LlamaBuildError(
                f"{what} failed (exit {done.returncode}): {shlex.join(cmd)}\n{tail}"
            )


def _say(text: str) -> None:
    print(f"llama_build: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent llama_build",
        description="Print the path of a llama-server binary, building one into the cache first "
        "if there is none.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild the cached binary")
    args = parser.parse_args(argv)
    try:
        path = build_llama_server(force=True) if args.force else ensure_llama_server()
    except LlamaBuildError as exc:
        print(f"llama_build: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
