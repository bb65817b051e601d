"""The graph's nodes: set up the task, generate a candidate, train it, improve on the outcome.

Each node reads its settings from the LangGraph runtime context (`Settings`), so the CLI, Studio
and callers drive the same code. Heavy things (chat clients, evaluators, archives) are built once
per distinct settings and reused across iterations.
"""

from __future__ import annotations

import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime

from agent.archive import RunArchive
from agent.extract import extract_code, parse_improvement
from agent.llm import ask, make_chat
from agent.prompts import (
    ERROR_CHARS,
    SUGGESTION_CHARS,
    constraints_text,
    generator_messages,
    improver_messages,
    outcome_text,
)
from agent.settings import Role, Settings
from agent.state import Candidate, Pending, State, TaskInfo, Triple, WindowUpdate
from sandbox.code import code_hash
from sandbox.result import new_result
from tools.train_candidate import evaluator_for, make_train_candidate

NO_CODE = "no_code"


def context(runtime: Runtime[Settings]) -> Settings:
    """The run's settings; a graph invoked without a context (e.g. a bare Studio run) reads env."""
    return runtime.context if runtime.context is not None else Settings()


@cache
def _chat(role: Role, settings_json: str) -> Any:
    settings = Settings.model_validate_json(settings_json)
    return make_chat(role, settings.role(role), settings.llm_timeout_s)


def chat_for(role: Role, settings: Settings) -> Any:
    return _chat(role, settings.model_dump_json())


@cache
def archive_for(run_dir: Path) -> RunArchive:
    return RunArchive(run_dir)


def run_archive(settings: Settings, run_id: str) -> RunArchive:
    return archive_for((settings.runs_dir / run_id).resolve())


def setup(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Fill in the run id and the task (dataset shape and classes) once, at the start of a run."""
    if state.get("task"):
        return {}
    settings = context(runtime)
    thread = (get_config().get("configurable") or {}).get("thread_id")
    run_id = state.get("run_id") or thread or uuid.uuid4().hex[:12]
    dataset = evaluator_for(settings).dataset
    task = TaskInfo(
        dataset=dataset.name,
        input_shape=list(dataset.input_shape),
        num_classes=dataset.num_classes,
        n_train=settings.train_limit or dataset.n_train,
    )
    return {"run_id": run_id, "task": task, "iteration": 0, "window": [], "ok_count": 0}


def generate(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Ask the Generator for one complete module; extract its code without ever running it."""
    settings = context(runtime)
    single = settings.single_shot  # the baseline: the task alone, every time
    messages = generator_messages(
        state["task"],
        best=None if settings.no_reference or single else state.get("best"),
        last=None if single else state.get("last"),
        suggestion="" if settings.no_improver or single else state.get("suggestion", ""),
        window=[] if settings.no_history or single else state["window"],
        constraints=constraints_text(settings.constraints, settings.hardware_limits()),
    )
    started = time.monotonic()
    # seed = base + iteration: a fixed seed would make an identical prompt give identical code
    reply = ask(
        chat_for("generator", settings),
        messages,
        role="generator",
        seed=settings.run_seed + state["iteration"],
        retries=settings.llm_retries,
    )
    return {
        "code": extract_code(reply.text),
        "gen_tokens": reply.tokens,
        "gen_seconds": time.monotonic() - started,
    }


def train(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Score the candidate through the `train_candidate` tool and archive it before moving on."""
    settings = context(runtime)
    iteration, code = state["iteration"], state.get("code")
    if code is None:
        result: dict[str, Any] = dict(
            new_result(NO_CODE, "the reply contained no Python code block", code_hash(""))
        )
    else:
        tool = make_train_candidate(evaluator_for(settings))
        result = tool.invoke({"code": code})
    run_archive(settings, state["run_id"]).record_candidate(
        iteration, code, result, state.get("gen_tokens", 0), state.get("gen_seconds")
    )
    candidate = Candidate(iteration=iteration, code=code or "", result=result)
    best = state.get("best")
    update: dict[str, Any] = {"last": candidate, "iteration": iteration + 1, "code": None}
    if result["status"] == "ok":
        update["ok_count"] = state.get("ok_count", 0) + 1
        if best is None or result["val_accuracy"] > best["result"]["val_accuracy"]:
            update["best"] = best = candidate
    best_acc = best["result"]["val_accuracy"] if best else None
    get_stream_writer()(
        {
            "event": "candidate",
            "iteration": iteration,
            "iterations": settings.iterations,
            "kind": result["kind"],
            "val_accuracy": result.get("val_accuracy"),
            "best_val_accuracy": best_acc,
            "ok": update.get("ok_count", state.get("ok_count", 0)),
            "message": result["message"][:ERROR_CHARS],
        }
    )
    return update


def stop_reason(state: State, settings: Settings) -> str | None:
    best = state.get("best")
    target = settings.target_accuracy
    if target is not None and best is not None and best["result"]["val_accuracy"] >= target:
        return "target"
    if state["iteration"] >= settings.iterations:
        return "budget"
    return None


def improve(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Close the pending triple with this outcome, then ask the Improver for the next change."""
    settings = context(runtime)
    last = state["last"]
    assert last is not None
    best = state.get("best")
    best_acc = best["result"]["val_accuracy"] if best else None
    window = list(state["window"])
    update: dict[str, Any] = {}
    closed: Triple | None = None
    if pending := state.get("pending"):
        closed = Triple(
            iteration=last["iteration"],
            problem=pending["problem"],
            suggestion=pending["suggestion"],
            outcome=outcome_text(last["result"], best_acc),
        )
        window = [*window, closed][-settings.history_k :]
        update["window"] = WindowUpdate(append=[closed], keep=settings.history_k)
    reason = stop_reason(state, settings)
    advice: Pending | None = None
    tokens = 0
    if reason is None and not (settings.no_improver or settings.single_shot):
        reply = ask(
            chat_for("improver", settings),
            improver_messages(
                state["task"], last=last, best=best, window=[] if settings.no_history else window
            ),
            role="improver",
            seed=settings.run_seed + last["iteration"],
            retries=settings.llm_retries,
        )
        tokens = reply.tokens
        advice = _advice(parse_improvement(reply.text), last)
    run_archive(settings, state["run_id"]).record_improvement(
        last["iteration"],
        dict(closed) if closed else None,
        advice["problem"] if advice else None,
        advice["suggestion"] if advice else None,
        tokens,
    )
    update["pending"] = advice
    update["suggestion"] = advice["suggestion"] if advice else ""
    update["stop_reason"] = reason
    return update


def _advice(parsed: dict[str, str] | None, last: Candidate) -> Pending:
    """The Improver's answer, clipped for the memory; a sane default when it gave none."""
    if parsed and parsed.get("suggestion"):
        return Pending(
            problem=parsed.get("problem", "")[:SUGGESTION_CHARS],
            suggestion=parsed["suggestion"][:SUGGESTION_CHARS],
        )
    result = last["result"]
    if result["status"] != "ok":
        problem = f"{result['kind']}: {result['message']}"[:ERROR_CHARS]
        return Pending(problem=problem, suggestion="Fix this error; keep the rest of the network.")
    return Pending(
        problem="the Improver gave no usable advice",
        suggestion="Make one small change likely to raise one-epoch accuracy.",
    )


def route_after_improve(state: State) -> str:
    return "end" if state.get("stop_reason") else "generate"
