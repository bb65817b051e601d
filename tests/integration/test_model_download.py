"""The embedded default model from a hub: a local `HF_ENDPOINT` server (tests/fakes/hub_server.py)
serves tiny GGUFs under the coder models' names. A download killed mid-file resumes where it
stopped; `agent.run` says which model and why on its first line, downloads it with progress,
and searches with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.llm.build import ensure_llama_server
from agent.llm.embedded_settings import EmbeddedSettings
from agent.llm.models import (
    CODER_1_5B,
    CODER_7B,
    embedded_default_model,
    model_label,
    probe_hardware,
)
from agent.llm.server import free_port
from tests.fakes.hub_server import FakeHub
from tests.helpers.agent_cli import agent_env, agent_run
from tests.helpers.gguf import write_tiny_gguf
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.xdist_group(__name__)  # its module-scoped hub: one worker

REPO, FILE = "owner/tiny-GGUF", "tiny.gguf"


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


def hub_env(tmp_path: Path, hub: FakeHub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "NASLOOP_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # our model cache, empty
        HF_HUB_CACHE=str(tmp_path / "hf"),  # the Hugging Face cache, empty
    )
    return env


def download_in_child(env: dict[str, str]) -> subprocess.Popen[str]:
    code = f"from agent.llm.download import download; print(download({REPO!r}, {FILE!r}))"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_download_killed_mid_file_resumes_with_a_range_request(tmp_path: Path, gguf_bytes: bytes):
    size = len(gguf_bytes)
    with FakeHub({REPO: {FILE: gguf_bytes}}, bytes_per_s=size / 8) as hub:  # 8 s for the file
        env = hub_env(tmp_path, hub)
        part = tmp_path / "cache" / "nasloop" / "models" / "owner--tiny-GGUF" / f"{FILE}.part"
        child = download_in_child(env)
        deadline = time.monotonic() + 60
        while not (part.is_file() and part.stat().st_size >= size // 4):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the download never got a quarter of the file"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kept = part.stat().st_size
        assert size // 4 <= kept < size  # killed mid-file, the part file stays

        hub.bytes_per_s = None
        again = download_in_child(env)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        # the killed request's handler logs it when its next write fails: wait for that line
        waited = time.monotonic() + 30
        while not any(m == "GET" and FILE in p and r is None for m, p, r, _ in hub.requests):
            assert time.monotonic() < waited, "the killed request was never logged"
            time.sleep(0.05)
    final = Path(out.strip())
    assert final.read_bytes() == gguf_bytes
    assert not part.exists()
    # the hub logs a request when it ends, and the killed one may end after the resumed one
    gets = {
        rng: sent for method, path, rng, sent in hub.requests if method == "GET" and FILE in path
    }
    assert set(gets) == {None, f"bytes={kept}-"}, hub.requests  # the whole file, then the rest...
    assert gets[f"bytes={kept}-"] == size - kept  # ...which is all the second one sent
    assert f"download: resuming {FILE} at" in err and "(100%)" in err  # progress is shown


def test_agent_run_says_its_model_and_why_first_downloads_it_and_searches_with_it(
    tmp_path: Path, gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch
):
    coders = {}
    for spec in (CODER_7B, CODER_1_5B):  # whichever this machine's hardware asks for
        repo, _, filename = spec.partition(":")
        coders[repo] = {filename: gguf_bytes}
    with FakeHub(coders) as hub:
        env = agent_env(tmp_path, **hub_env(tmp_path, hub))
        for key in [k for k in env if k.startswith("NASLOOP_EMBEDDED_")]:
            del env[key]
        env.update(
            NASLOOP_LLAMA_SERVER=str(ensure_llama_server()),
            NASLOOP_EMBEDDED_PORT=str(free_port()),
            NASLOOP_EMBEDDED_CTX_SIZE="2048",
            NASLOOP_GENERATOR_MAX_TOKENS="64",
            NASLOOP_IMPROVER_MAX_TOKENS="64",
        )
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        expected = embedded_default_model(EmbeddedSettings(), hardware=probe_hardware())
        run = agent_run(env, "--iterations", "1", "--json")
        out, err = run.communicate(timeout=600)
    lines = err.splitlines()
    assert run.returncode == 0, err
    assert lines[0] == f"nasloop: {expected.line()}"
    label = model_label(expected.spec)
    assert label.startswith("Qwen2.5-Coder-")
    assert any(line.startswith(f"download: {label}.gguf") and "(100%)" in line for line in lines)
    run_dir = Path(json.loads(out.splitlines()[-1])["run_dir"])
    assert json.loads((run_dir / "embedded_llm.json").read_text()) == {"model": expected.spec}
    assert json.loads((run_dir / "settings.json").read_text())["generator_model"] == label
