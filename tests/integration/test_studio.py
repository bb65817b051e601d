"""The search served by the real `langgraph dev` (what LangGraph Studio talks to), used over HTTP.

One server for the module: `langgraph dev` in the repo root, offline, no LangSmith key, its
nasloop settings (LLM, sandbox, dataset) from the environment it is started with. The LLM is the
test's own OpenAI-compatible HTTP server replaying recorded replies; candidates train in the real
Docker sandbox on MNIST-5k. Clients: `langgraph-sdk` (a thread, a streamed run, the final state)
and a `RemoteGraph` used as a node of a local parent graph.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_sync_client

from sandbox.backends.docker import reap_orphans
from sandbox.backends.warm import WARM_LABEL
from tests.fakes import MNIST5K_REPLIES, FakeOpenAIServer, ScriptedResponder
from tests.helpers import leftovers
from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group(__name__)]
SERVER_ITERATIONS = 2  # the server's NASLOOP_ITERATIONS: what a run without a context gets
STARTUP_S = 90.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# `- 🚀 API: http://127.0.0.1:PORT` (between colour codes): the port it took, not the one asked
API_LINE = re.compile(r"API:\s*(http://127\.0\.0\.1:(\d+))")


@dataclass
class DevServer:
    url: str
    asked_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 6000) -> str:
        return ANSI.sub("", self.log.read_text(errors="replace"))[-chars:]


def server_env(data: Path, runs: Path, llm_url: str) -> dict[str, str]:
    drop = ("NASLOOP_", "LANGSMITH_", "LANGCHAIN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        NASLOOP_DATASET="mnist5k",
        NASLOOP_DATA_DIR=str(data),
        NASLOOP_RUNS_DIR=str(runs),
        NASLOOP_SANDBOX="docker",
        NASLOOP_TRAIN_LIMIT="600",
        NASLOOP_TIMEOUT_S="120",
        # reply 0 flattens with `.view`, which a channels_last input tensor refuses
        NASLOOP_CHANNELS_LAST="false",
        NASLOOP_ITERATIONS=str(SERVER_ITERATIONS),
        NASLOOP_GENERATOR_BASE_URL=llm_url,
        NASLOOP_GENERATOR_MODEL="fake-generator",
        NASLOOP_IMPROVER_MODEL="fake-improver",
        NASLOOP_LLM_RETRIES="1",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        PYTHONUTF8="1",  # the banner has emoji; never let a C locale make that an error
    )
    return env


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, as 'pid command' lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(f"{stat.parent.name} {cmdline[:120]}")
    return found


def stop_group(process: subprocess.Popen[bytes]) -> list[str]:
    """SIGTERM the server's whole process group, SIGKILL what is left; returns survivors."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_members(pgid):
                return []
            time.sleep(0.2)
    process.wait(timeout=5)
    return group_members(pgid)


def wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> str:
    """The API URL from the banner, once the server answers `GET /ok`."""
    deadline = time.monotonic() + STARTUP_S
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"langgraph dev exited with {process.returncode}")
        if url is None and (
            match := API_LINE.search(ANSI.sub("", log.read_text(errors="replace")))
        ):
            url = match.group(1)
        if url is not None:
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.25)
    raise TimeoutError(f"langgraph dev not ready after {STARTUP_S:.0f}s (API URL: {url})")


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(ScriptedResponder.from_file(MNIST5K_REPLIES)) as server:
        yield server


@pytest.fixture(scope="module")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory,
    llm: FakeOpenAIServer,
    docker_client: Any,
    sandbox_image: str,
) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("studio")
    log = tmp / "langgraph-dev.log"
    # it keeps its in-memory threads in ./.langgraph_api; leave none behind that was not there
    state_dir = ROOT / ".langgraph_api"
    had_state_dir = state_dir.exists()
    # hold the asked port, so the server must move and the test must read where it went
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    asked = blocker.getsockname()[1]
    command = [
        *(sys.executable, "-m", "langgraph_cli"),  # `langgraph`, from this interpreter's env
        *("dev", "--host", "127.0.0.1", "--port", str(asked), "--no-browser"),
        "--no-reload",  # an edit in the working tree must not restart it under a running search
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,  # graph paths in langgraph.json resolve against the working directory
            env=server_env(tmp / "data", tmp / "runs", llm.base_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the teardown kills the whole tree
        )
    server = DevServer("", asked, process, log)
    try:
        try:
            server.url = wait_until_ready(process, log)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n--- its log ---\n{server.log_tail()}", pytrace=False)
        yield server
    finally:
        blocker.close()
        survivors = stop_group(process)
        if not had_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    assert survivors == [], f"langgraph dev left processes behind: {survivors}"
    # A server stopped by a signal may leave its warm sandbox container (never a job's): the next
    # nasloop process on the host removes it on start, as after any crash. Nothing else remains.
    orphans = leftovers.orphaned_containers(docker_client)
    assert [c.name for c in orphans if WARM_LABEL not in c.labels] == []
    reap_orphans(docker_client)
    assert leftovers.orphaned_containers(docker_client) == []


@contextmanager
def showing_log(server: DevServer) -> Iterator[None]:
    """On any failure inside, print the server's log (pytest shows it with the failure)."""
    try:
        yield
    except BaseException:
        print(f"--- langgraph dev log (tail) ---\n{server.log_tail()}")
        raise


def candidate_events(parts: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [d for mode, d in parts if mode == "custom" and d.get("event") == "candidate"]


def check_progress(events: list[dict[str, Any]], iterations: int) -> None:
    assert len(events) >= 2, events
    assert [e["iteration"] for e in events] == list(range(iterations))  # one per candidate
    for e in events:
        assert e["iterations"] == iterations
        assert {"kind", "val_accuracy", "best_val_accuracy", "ok", "message"} <= set(e)


def check_final(values: dict[str, Any], iterations: int) -> None:
    assert values["iteration"] == iterations and values["stop_reason"] == "budget"
    window = values["window"]
    # every iteration after the first closes one triple; K (5) is not reached
    assert isinstance(window, list) and len(window) == iterations - 1
    assert all({"problem", "suggestion", "outcome"} <= set(t) for t in window)
    assert values["task"]["dataset"] == "mnist5k"


def test_server_moved_off_the_taken_port(dev_server: DevServer) -> None:
    port = int(dev_server.url.rsplit(":", 1)[1])
    assert port != dev_server.asked_port
    with showing_log(dev_server):
        client = get_sync_client(url=dev_server.url)
        (assistant,) = client.assistants.search(graph_id="nas")  # the one made from langgraph.json
        schemas = client.assistants.get_schemas(assistant["assistant_id"])
        # Studio builds its settings form from this: our Settings, field names as in Python
        props = (schemas["context_schema"] or {})["properties"]
        assert {"iterations", "history_k", "dataset", "constraints"} <= set(props)


def test_sdk_run_streams_progress_and_ends_in_the_final_state(dev_server: DevServer) -> None:
    client = get_sync_client(url=dev_server.url)
    thread = client.threads.create()
    iterations = SERVER_ITERATIONS + 1  # from the run's context: it wins over the server's env
    parts: list[tuple[str, Any]] = []
    with showing_log(dev_server):
        for part in client.runs.stream(
            thread["thread_id"],
            "nas",
            input={},
            context={"iterations": iterations},
            stream_mode=["custom", "updates"],
        ):
            assert part.event != "error", part.data
            parts.append((part.event, part.data))
        events = candidate_events(parts)
        check_progress(events, iterations)
        nodes = [next(iter(d)) for mode, d in parts if mode == "updates" and isinstance(d, dict)]
        assert nodes[:4] == ["setup", "generate", "train", "improve"]
        assert nodes.count("train") == iterations

        state = client.threads.get_state(thread["thread_id"])
        values: Any = state["values"]
        check_final(values, iterations)
        assert state["next"] == []
        assert values["run_id"] == thread["thread_id"]  # the thread names the run archive
        best = values.get("best")
        assert events[-1]["best_val_accuracy"] == (best["result"]["val_accuracy"] if best else None)
        assert "Blocking call" not in dev_server.log_tail(1_000_000)  # blockbuster's complaint


class ParentState(TypedDict, total=False):
    """A parent graph's state: the keys of ours it cares about, plus its own."""

    request: str
    task: dict[str, Any]
    iteration: int
    window: list[dict[str, Any]]
    best: dict[str, Any] | None
    stop_reason: str | None
    report: str


def report(state: ParentState) -> dict[str, Any]:
    best = state.get("best")
    score = best["result"]["val_accuracy"] if best else None
    return {"report": f"{state['iteration']} candidates tried, best validation accuracy {score}"}


def test_remote_graph_as_a_node_of_a_parent_graph(dev_server: DevServer) -> None:
    builder = StateGraph(ParentState)
    builder.add_node("nas", RemoteGraph("nas", url=dev_server.url))
    builder.add_node("report", report)
    builder.add_edge(START, "nas")
    builder.add_edge("nas", "report")
    builder.add_edge("report", END)
    parent = builder.compile()

    parts: list[tuple[str, Any]] = []
    final: dict[str, Any] = {}
    with showing_log(dev_server):
        # subgraphs=True: the remote graph's events arrive under the parent's node namespace
        for ns, mode, data in parent.stream(
            {"request": "find a small net for digits"},
            stream_mode=["custom", "updates", "values"],
            subgraphs=True,
        ):
            parts.append((mode, data))
            if mode == "values" and not ns and isinstance(data, dict):
                final = data
        # no context crosses into a RemoteGraph node: the server's own settings apply
        check_progress(candidate_events(parts), SERVER_ITERATIONS)
        check_final(final, SERVER_ITERATIONS)
        assert final["report"].startswith(f"{SERVER_ITERATIONS} candidates tried")
        assert final["request"] == "find a small net for digits"  # the parent's own key survives


def test_a_bad_context_is_one_error_event_naming_the_setting(dev_server: DevServer) -> None:
    client = get_sync_client(url=dev_server.url)
    thread = client.threads.create()
    with showing_log(dev_server):
        parts = list(
            client.runs.stream(
                thread["thread_id"], "nas", input={}, context={"history_k": 0}, stream_mode="custom"
            )
        )
        # the context becomes Settings(**context) before any node runs: nothing is called
        errors = [p.data for p in parts if p.event == "error"]
        assert len(errors) == 1 and "history_k" in errors[0]["message"], parts
        assert [p.event for p in parts if p.event == "custom"] == []
