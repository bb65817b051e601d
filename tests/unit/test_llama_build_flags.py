"""Which llama-server a model choice gets: a CUDA build is a cached binary of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.llm.build import (
    CUDA_CMAKE_ARGS,
    _extra_cmake_args,
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


def test_a_cuda_build_asks_cmake_for_cuda_and_caches_apart_from_the_cpu_build():
    assert _extra_cmake_args(cuda=True)[: len(CUDA_CMAKE_ARGS)] == list(CUDA_CMAKE_ARGS)
    assert "-DGGML_CUDA=ON" in CUDA_CMAKE_ARGS
    assert not _extra_cmake_args(cuda=False)
    assert cached_llama_server(cuda=True) != cached_llama_server(cuda=False)
    assert cached_llama_server(cuda=True).parent.parent == cached_llama_server().parent.parent


def test_a_cpu_llama_server_on_the_path_serves_cpu_choices_but_not_gpu_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    on_path = executable(tmp_path / "bin" / "llama-server")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_llama_server(cuda=False) == on_path
    assert find_llama_server(cuda=True) is None  # it would be built with CUDA instead
    gpu_build = executable(cached_llama_server(cuda=True))
    assert find_llama_server(cuda=True) == gpu_build
