"""Which llama-server a model choice gets: a CUDA build is a cached binary of its own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.llm import build
from agent.llm.build import (
    cached_llama_server,
    find_llama_server,
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NASLOOP_LLAMA_SERVER", raising=False)
    monkeypatch.delenv("NASLOOP_LLAMA_CMAKE_ARGS", raising=False)


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def configure_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kwargs: Any) -> Any:
    """The cmake commands a build runs (nothing is fetched or compiled) and the path it made."""
    commands: list[list[str]] = []

    def run(cmd: list[str], what: str, log: bool) -> None:
        commands.append(cmd)
        if "--build" in cmd:  # what the compile would leave
            executable(Path(cmd[cmd.index("--build") + 1]) / "bin" / "llama-server")

    monkeypatch.setattr(build, "_fetch_source", lambda version, work, log: tmp_path / "src")
    monkeypatch.setattr(build, "_run", run)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    return commands, build.build_llama_server(log=False, **kwargs)


def test_a_cuda_build_asks_cmake_for_cuda_and_caches_apart_from_the_cpu_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (cpu_configure, _), cpu = configure_commands(monkeypatch, tmp_path)
    (gpu_configure, _), gpu = configure_commands(monkeypatch, tmp_path, cuda=True)
    portable = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF"]
    assert cpu_configure[:5] == ["cmake", "-S", str(tmp_path / "src"), "-B", cpu_configure[4]]
    assert cpu_configure[5:8] == portable and "-DGGML_CUDA=ON" not in cpu_configure
    assert gpu_configure[5:8] == portable
    assert gpu_configure[-2:] == ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=native"]
    assert cpu == cached_llama_server() and gpu == cached_llama_server(cuda=True)
    assert cpu.is_file() and gpu.is_file() and cpu != gpu and cpu.parent.parent == gpu.parent.parent
    # a user's own flags reach cmake too, and get a cache directory of their own
    monkeypatch.setenv("NASLOOP_LLAMA_CMAKE_ARGS", "-DGGML_AVX512=OFF")
    (own_configure, _), own = configure_commands(monkeypatch, tmp_path)
    assert own_configure[-1] == "-DGGML_AVX512=OFF" and own not in (cpu, gpu)


def test_a_cpu_llama_server_on_the_path_serves_cpu_choices_but_not_gpu_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    on_path = executable(tmp_path / "bin" / "llama-server")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_llama_server(cuda=False) == on_path
    assert find_llama_server(cuda=True) is None  # it would be built with CUDA instead
    gpu_build = executable(cached_llama_server(cuda=True))
    assert find_llama_server(cuda=True) == gpu_build
