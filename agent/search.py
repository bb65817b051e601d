"""One whole search: settings resolved (a resumed run keeps its own), the embedded LLM server when
none is configured, every preflight, the graph run with a SQLite checkpointer, the summary, and
the end-of-run steps (final test, export, report).

The CLI (`python -m agent.run`, agent/run.py) and the `search_architectures` tool
(tools/search.py) both drive a search through this module.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

from agent.archive.candidates import RunArchive
from agent.archive.lock import RunBusy, RunLock
from agent.archive.paths import (
    CHECKPOINTS_FILE,
    embedded_model,
    mark_embedded,
    reopen,
    run_path,
    save_settings,
    saved_settings,
    uses_embedded,
)
from agent.graph import build_graph
from agent.llm.client import LLMUnavailable, preflight
from agent.llm.embedded_settings import ServerError, embedded_settings
from agent.llm.models import ModelChoice, embedded_default_model
from agent.llm.server import answers, server_for
from agent.progress import progress_view
from agent.settings import Settings, load_settings
from sandbox.backends.base import BackendUnavailable
from sandbox.data import DatasetUnavailable, UnknownDataset
from sandbox.faults import InfrastructureFault
from sandbox.selftest import self_test
from sandbox.settings import SettingsError, bad_input
from tools.train_candidate import evaluator_for, executor_for

BAD_INPUT = (
    SettingsError,
    UnknownDataset,
    DatasetUnavailable,
    BackendUnavailable,
    LLMUnavailable,
    ServerError,
)
# The exit code of a run stopped by an InfrastructureFault (2 is bad input, 130 an interrupt).
EXIT_INFRASTRUCTURE = 3


def new_run_id() -> str:
    """A fresh run id: sortable by start time, unique by its random tail."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def resolve(flags: dict[str, Any], run_id: str | None) -> tuple[Settings, str, bool]:
    """Settings, run id, and whether this resumes a run: a resumed run keeps its own settings,
    and only `flags` (settings given now) override them."""
    settings = load_settings(**flags)
    run_id = run_id or new_run_id()
    path = run_path(settings.runs_dir, run_id)
    if saved_settings(path) is None:
        return settings, run_id, False
    return reopen(path, **flags), run_id, True


def embedded_llm(
    flags: dict[str, Any],
    settings: Settings,
    run_id: str,
    resuming: bool,
    stack: contextlib.ExitStack,
    model_flag: str | None = None,
) -> tuple[Settings, ModelChoice | None]:
    """Start the embedded llama.cpp server (agent/llm_server) when the user configured no LLM
    server and none answers on the local default port; `stack` stops it. Both roles then use it.

    "Configured" means NASLOOP_GENERATOR_BASE_URL set now (flag, environment or .env). A resumed
    run does the same if it started on the embedded server, with the model it started with.
    """
    if "generator_base_url" in load_settings(**flags).model_fields_set:
        return settings, None
    path = run_path(settings.runs_dir, run_id)
    if resuming and not uses_embedded(path):
        return settings, None  # it ran against a configured server: keep that one
    embedded = embedded_settings()
    if model_flag:  # --embedded-model wins over NASLOOP_EMBEDDED_MODEL
        embedded = embedded.model_copy(update={"model": model_flag})
    url = embedded.local_url()
    if answers(url):  # e.g. `python -m agent serve` in another terminal
        return settings.model_copy(update={"generator_base_url": url}), None
    stored = embedded_model(path)
    if stored and not embedded.model:
        resumed = embedded_default_model(embedded.model_copy(update={"model": stored}))
        choice = replace(resumed, why="the model this run started with")
    else:
        choice = embedded_default_model(embedded)
    print(f"nasloop: {choice.line()}", file=sys.stderr, flush=True)
    print(
        f"nasloop: no LLM server configured (NASLOOP_GENERATOR_BASE_URL) and none answers at "
        f"{url}: starting an embedded llama.cpp server with {choice.spec}",
        file=sys.stderr,
        flush=True,
    )
    server = stack.enter_context(server_for(choice, embedded))
    update: dict[str, Any] = {"generator_base_url": server.base_url}
    if "generator_model" not in settings.model_fields_set:
        update["generator_model"] = server.alias
    return settings.model_copy(update=update), choice


def preflight_all(settings: Settings) -> None:
    """Raise one of BAD_INPUT, with a message that names the fix, before anything is written."""
    preflight("generator", settings.role("generator"))
    if settings.improver and not settings.single_shot:
        preflight("improver", settings.role("improver"))
    # prepares the dataset, picks and checks the sandbox, and connects to the Ray cluster if one
    # is asked for (here: in the main thread, once)
    executor_for(settings).check()


def search(settings: Settings, run_id: str, resuming: bool, quiet: bool) -> dict[str, Any]:
    run_dir = run_path(settings.runs_dir, run_id)
    if not resuming:
        save_settings(settings, run_dir)
    config = RunnableConfig(
        configurable={"thread_id": run_id}, recursion_limit=4 * settings.iterations + 20
    )
    if settings.parallel > 1:  # every branch of a round in flight at once, and LangGraph's own
        config["max_concurrency"] = settings.parallel + 4  # background work (stream, checkpoints)
    with SqliteSaver.from_conn_string(str(run_dir / CHECKPOINTS_FILE)) as saver:
        graph = build_graph(checkpointer=saver)
        snapshot = graph.get_state(config)
        start: dict[str, Any] | None = None if snapshot.next else {"run_id": run_id}
        if snapshot.values and not snapshot.next:
            # a finished run: continue only if the budget was raised since
            if snapshot.values.get("iteration", 0) >= settings.iterations:
                return summarise(settings, run_id, snapshot.values)
            graph.update_state(config, {"stop_reason": None}, as_node="improve")
            start = None
        # Before any candidate (again on every resume: the engine may have been away): a sandbox
        # that cannot train a known-good net stops the run here (InfrastructureFault), nobody
        # charged. Ray's workers build their own sandboxes; a lost one stops the run as well.
        if settings.executor == "local":
            seconds = self_test(evaluator_for(settings))
            if not quiet:
                print(f"nasloop: sandbox self-test passed ({seconds:.1f} s)", file=sys.stderr)
        view = progress_view(settings.iterations, dict(snapshot.values or {}), quiet)
        try:
            for event in graph.stream(
                start,
                config,
                context=settings,
                stream_mode="custom",
                durability="sync",
            ):
                view.event(event)
        finally:
            view.close()
        final = graph.get_state(config).values
    return summarise(settings, run_id, final)


def summarise(settings: Settings, run_id: str, state: dict[str, Any]) -> dict[str, Any]:
    run_dir = run_path(settings.runs_dir, run_id)
    summary = RunArchive(run_dir).summary()
    return {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "dataset": state.get("task", {}).get("dataset", settings.dataset),
        "stop_reason": state.get("stop_reason"),
        **summary,
    }


def finish(settings: Settings, run_id: str) -> dict[str, Any]:
    """The end of a run: final test, export, report, in that order (the report shows the other
    two). A step that fails says so in one line and the next still runs; the search's archive is
    only ever read here, and each step can be redone alone (`python -m agent final_test RUN_ID`,
    `python -m agent export`, `python -m agent report`)."""
    from agent.results.export import export_run
    from agent.results.final_test import run_final_test
    from agent.results.report import write_report

    run_dir = run_path(settings.runs_dir, run_id)

    def attempt(step: str, module: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            print(
                f"nasloop: {step} failed ({reason}); the search's archive is intact, "
                f"retry with `python -m {module} {run_id}`",
                file=sys.stderr,
                flush=True,
            )
            return None

    final = None
    if settings.final_top_k > 0:
        final = attempt("final test", "agent final_test", lambda: run_final_test(settings, run_id))
    exported = attempt("export", "agent export", lambda: export_run(run_dir))
    report = attempt("report", "agent report", lambda: write_report(run_dir))
    keys = ("rank", "iteration", "val_accuracy", "test_accuracy", "epochs", "kind")
    return {
        "final_test": [{k: r[k] for k in keys} for r in final or []],
        "export_dir": str(exported) if exported else None,
        "report_dir": str(report) if report else None,
    }


def run_to_end(
    flags: dict[str, Any],
    run_id: str | None,
    stack: contextlib.ExitStack,
    embedded_name: str | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """A search from start (or resume) to its end-of-run steps, as every command that starts one
    needs it: settings resolved, one process per run, the embedded LLM server held by `stack`,
    preflight, the search, then the final test, export and report. Returns the exit code (0
    done, 1 stopped by a failure, 2 bad input, 3 an infrastructure fault, 130 interrupted) and
    the summary when the search finished; every stop says its cause and how to resume."""
    try:
        settings, run_id, resuming = resolve(flags, run_id)
        lock = RunLock(run_path(settings.runs_dir, run_id))
        stack.callback(lock.release)
        if resuming:
            lock.acquire()  # refuse a second process before it starts servers or checks anything
        settings, embedded = embedded_llm(flags, settings, run_id, resuming, stack, embedded_name)
        preflight_all(settings)
        if not resuming:
            lock.acquire()  # only now may a new run's directory exist
    except (*BAD_INPUT, RunBusy) as exc:
        return bad_input(exc), None
    if embedded is not None:
        mark_embedded(run_path(settings.runs_dir, run_id), embedded.spec)
    verb = "resuming" if resuming else "starting"
    print(f"nasloop: {verb} run {run_id} in {run_path(settings.runs_dir, run_id)}", file=sys.stderr)
    resume_hint = f"the run is saved, resume it with `python -m agent.run --run-id {run_id}`"
    try:
        result = search(settings, run_id, resuming, quiet=False)
        result.update(finish(settings, run_id))
    except InfrastructureFault as exc:  # BackendUnavailable mid-run included
        print(
            f"nasloop: stopped by an infrastructure fault, no candidate charged: {exc}; "
            f"{resume_hint}",
            file=sys.stderr,
        )
        return EXIT_INFRASTRUCTURE, None
    except LLMUnavailable as exc:
        print(f"nasloop: stopped: {exc}; {resume_hint}", file=sys.stderr)
        return 1, None
    except KeyboardInterrupt:
        print(f"nasloop: interrupted; {resume_hint}", file=sys.stderr)
        return 130, None
    return 0, result
