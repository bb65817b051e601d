"""Headless search: `python -m agent.run [--flags]`, resumable with `--run-id`.

Every flag mirrors a setting (`--history-k` is NASLOOP_HISTORY_K, and so on; `--help` lists them
with their defaults). Everything that can be checked is checked before a run directory exists:
settings, dataset, sandbox, LLM servers. Exit codes: 0 done, 1 stopped by a failure (resumable),
2 bad input (nothing written). A finished search then runs the final test, the export and the
report (`finish`); a failure there is one line on stderr and leaves the exit code at 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import SecretStr

from agent.archive import RunArchive
from agent.llm import LLMUnavailable, preflight
from agent.lock import RunBusy, RunLock
from agent.progress import progress_view
from agent.serve import (
    ModelChoice,
    ServerError,
    answers,
    embedded_default_model,
    embedded_settings,
    server_for,
)
from agent.settings import Settings, load_settings
from graphs.nas import build_graph
from sandbox.backends.base import BackendUnavailable
from sandbox.data import DatasetUnavailable, UnknownDataset
from sandbox.settings import SettingsError
from tools.train_candidate import evaluator_for, executor_for

BAD_INPUT = (
    SettingsError,
    UnknownDataset,
    DatasetUnavailable,
    BackendUnavailable,
    LLMUnavailable,
    ServerError,
)
SETTINGS_FILE = "settings.json"
EMBEDDED_FILE = "embedded_llm.json"  # in a run dir: the run uses the embedded server, this model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.run", description="Run (or resume) an LLM-driven architecture search."
    )
    parser.add_argument("--run-id", help="resume this run (or start a new run with this id)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description or ''} (NASLOOP_{name.upper()}; default {field.default})"
        help_text = help_text.replace("%", "%%")  # argparse formats help strings
        if field.annotation is bool:
            # --flag sets True and --no-flag False. Not BooleanOptionalAction: it reads any flag
            # that starts with --no- as a negation, so --no-history would set no_history False.
            parser.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
            parser.add_argument(
                "--no-" + flag[2:], dest=name, action="store_const", const=False, help=f"{flag} off"
            )
        else:
            parser.add_argument(flag, dest=name, metavar=_metavar(field.annotation), help=help_text)
    return parser


def _metavar(annotation: Any) -> str:
    options = get_args(annotation)
    return (
        "|".join(map(str, options)) if options and all(isinstance(o, str) for o in options) else "V"
    )


def resolve(args: argparse.Namespace) -> tuple[Settings, str, bool]:
    """Settings, run id, and whether this resumes a run: a resumed run keeps its own settings,
    and only flags given now override them."""
    flags = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    settings = load_settings(**flags)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    saved = settings.runs_dir / run_id / SETTINGS_FILE
    if not saved.is_file():
        return settings, run_id, False
    stored = json.loads(saved.read_text())
    return load_settings(**{**stored, **flags}), run_id, True


def embedded_llm(
    args: argparse.Namespace,
    settings: Settings,
    run_id: str,
    resuming: bool,
    stack: contextlib.ExitStack,
) -> tuple[Settings, ModelChoice | None]:
    """Start the embedded llama.cpp server (agent.serve) when the user configured no LLM server
    and none answers on the local default port; `stack` stops it. Both roles then use it.

    "Configured" means NASLOOP_GENERATOR_BASE_URL set now (flag, environment or .env). A resumed
    run does the same if it started on the embedded server, with the model it started with.
    """
    flags = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    if "generator_base_url" in load_settings(**flags).model_fields_set:
        return settings, None
    marker = settings.runs_dir / run_id / EMBEDDED_FILE
    if resuming and not marker.is_file():
        return settings, None  # it ran against a configured server: keep that one
    embedded = embedded_settings()
    url = embedded.local_url()
    if answers(url):  # e.g. `python -m agent.serve` in another terminal
        return settings.model_copy(update={"generator_base_url": url}), None
    stored = json.loads(marker.read_text()).get("model") if marker.is_file() else None
    if stored and not embedded.model:
        choice = ModelChoice(stored, "the model this run started with")
    else:
        choice = embedded_default_model(embedded)
    print(
        f"nasloop: no LLM server configured (NASLOOP_GENERATOR_BASE_URL) and none answers at "
        f"{url}: starting an embedded llama.cpp server with {choice.spec} ({choice.why})",
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
    if not (settings.no_improver or settings.single_shot):
        preflight("improver", settings.role("improver"))
    evaluator = evaluator_for(settings)  # prepares the dataset, picks and checks the sandbox
    # connects to the Ray cluster, if one is asked for (here: in the main thread, once)
    executor_for(settings, evaluator, settings.executor, settings.ray_retries).check()


def save_settings(settings: Settings, run_dir: Path) -> None:
    data = settings.model_dump(mode="json")
    for key, value in settings:
        if isinstance(value, SecretStr):
            del data[key]  # keys stay in the environment, never in the run directory
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SETTINGS_FILE).write_text(json.dumps(data, indent=2, default=str))


def search(settings: Settings, run_id: str, resuming: bool, quiet: bool) -> dict[str, Any]:
    run_dir = settings.runs_dir / run_id
    if not resuming:
        save_settings(settings, run_dir)
    config = RunnableConfig(
        configurable={"thread_id": run_id}, recursion_limit=4 * settings.iterations + 20
    )
    if settings.parallel > 1:  # every branch of a round in flight at once, and LangGraph's own
        config["max_concurrency"] = settings.parallel + 4  # background work (stream, checkpoints)
    with SqliteSaver.from_conn_string(str(run_dir / "checkpoints.sqlite")) as saver:
        graph = build_graph(checkpointer=saver)
        snapshot = graph.get_state(config)
        start: dict[str, Any] | None = None if snapshot.next else {"run_id": run_id}
        if snapshot.values and not snapshot.next:
            # a finished run: continue only if the budget was raised since
            if snapshot.values.get("iteration", 0) >= settings.iterations:
                return summarise(settings, run_id, snapshot.values)
            graph.update_state(config, {"stop_reason": None}, as_node="improve")
            start = None
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
    summary = RunArchive(settings.runs_dir / run_id).summary()
    return {
        "run_id": run_id,
        "run_dir": str(settings.runs_dir / run_id),
        "dataset": state.get("task", {}).get("dataset", settings.dataset),
        "stop_reason": state.get("stop_reason"),
        **summary,
    }


def finish(settings: Settings, run_id: str) -> dict[str, Any]:
    """The end of a run: final test, export, report, in that order (the report shows the other
    two). A step that fails says so in one line and the next still runs; the search's archive is
    only ever read here, and each step can be redone alone (`python -m agent.final_test RUN_ID`,
    `agent.export`, `agent.report`)."""
    from agent.export import export_run
    from agent.final_test import run_final_test
    from agent.report import write_report

    run_dir = settings.runs_dir / run_id

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
        final = attempt("final test", "agent.final_test", lambda: run_final_test(settings, run_id))
    exported = attempt("export", "agent.export", lambda: export_run(run_dir))
    report = attempt("report", "agent.report", lambda: write_report(run_dir))
    keys = ("rank", "iteration", "val_accuracy", "test_accuracy", "epochs", "kind")
    return {
        "final_test": [{k: r[k] for k in keys} for r in final or []],
        "export_dir": str(exported) if exported else None,
        "report_dir": str(report) if report else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.ExitStack() as stack:  # holds the embedded LLM server, if one is started
        return _main(args, stack)


def _main(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    try:
        settings, run_id, resuming = resolve(args)
        lock = RunLock(settings.runs_dir / run_id)
        stack.callback(lock.release)
        if resuming:
            lock.acquire()  # refuse a second process before it starts servers or checks anything
        settings, embedded = embedded_llm(args, settings, run_id, resuming, stack)
        preflight_all(settings)
        if not resuming:
            lock.acquire()  # only now may a new run's directory exist
    except (*BAD_INPUT, RunBusy) as exc:
        print(f"nasloop: error: {exc}", file=sys.stderr)
        return 2
    if embedded is not None:
        marker = settings.runs_dir / run_id / EMBEDDED_FILE
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"model": embedded.spec}))
    verb = "resuming" if resuming else "starting"
    print(f"nasloop: {verb} run {run_id} in {settings.runs_dir / run_id}", file=sys.stderr)
    resume_hint = f"the run is saved, resume it with `python -m agent.run --run-id {run_id}`"
    try:
        result = search(settings, run_id, resuming, quiet=False)
        result.update(finish(settings, run_id))
    except (LLMUnavailable, BackendUnavailable) as exc:
        print(f"nasloop: stopped: {exc}; {resume_hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nasloop: interrupted; {resume_hint}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result))
    else:
        best = result["best_val_accuracy"]
        print(
            f"done: {result['iterations']} candidates, success rate {result['success_rate']:.0%}, "
            f"best validation accuracy {best if best is None else f'{best:.4f}'}"
            f"\nbest code: {result['best_code_path']}\nrun: {result['run_dir']}"
        )
        top = result["final_test"][:1]
        if top and top[0]["test_accuracy"] is not None:
            print(f"test accuracy of the best (final test): {top[0]['test_accuracy']:.4f}")
        if result["report_dir"]:
            print(f"report: {result['report_dir']}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
