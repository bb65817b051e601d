"""The graph's nodes: set up the task, generate a candidate, train it, improve on the outcome.

Each node reads its settings from the LangGraph runtime context (`Settings`), so the CLI, Studio
and callers drive the same code. Heavy things (chat clients, evaluators, archives) are built once
per distinct settings and reused across iterations.

Parallel rounds (`--parallel N`): `fan_out` sends N branches to `generate`, each with its own
iteration number, sampling seed (run seed + iteration) and temperature (spread around the
Generator's); each branch's `generate` hands its code straight to its own `train` (a `Send`), which
trains it (through the executor: local, or Ray), archives it and adds it to `round`. `improve`
then joins the round in iteration order (see agent/state.py) and asks the Improver once.
"""

from __future__ import annotations

import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any, cast

from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from agent.advice_reader import parse_improvement
from agent.archive import RunArchive
from agent.code_reader import extract_code
from agent.llm import ask, make_chat
from agent.observe import generator_called, improver_called, stage, worker_of
from agent.prompts import (
    ERROR_CHARS,
    SUGGESTION_CHARS,
    constraints_text,
    generator_messages,
    improver_messages,
    outcome_text,
)
from agent.rundir import run_path
from agent.settings import Role, Settings
from agent.state import (
    Branch,
    Candidate,
    Pending,
    State,
    Tally,
    Triple,
    WindowUpdate,
    best_accuracy,
    tally,
)
from sandbox.code import code_hash
from sandbox.result import EvalResult, new_result
from tools.train_candidate import task_for, train_candidate_for

TEMPERATURE_SPREAD = 0.2  # a parallel round's Generator temperatures span base ± this
# What a parallel branch's prompt and progress event need from the state (its Send payload)
BRANCH_KEYS = ("run_id", "task", "best", "last", "suggestion", "window", "ok_count")


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
    return archive_for(run_path(settings.runs_dir, run_id).resolve())


def setup(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Fill in the run id and the task (dataset shape and classes) once, at the start of a run."""
    if state.get("task"):
        return {}
    settings = context(runtime)
    thread = (get_config().get("configurable") or {}).get("thread_id")
    run_id = state.get("run_id") or thread or uuid.uuid4().hex[:12]
    update = {
        "run_id": run_id,
        "task": task_for(settings),
        "iteration": 0,
        "window": [],
        "ok_count": 0,
    }
    return {**update, **_round_size(cast(State, update), settings)}


def generate(state: State, runtime: Runtime[Settings]) -> Command[str]:
    """Ask the Generator for one complete module; extract its code without ever running it.

    Then on to `train`: the graph's own step, or, in a parallel round's branch, a `Send` that
    carries this branch's code to its own `train`.
    """
    settings = context(runtime)
    single = settings.single_shot  # the baseline: the task alone, every time
    best_shown = None if not settings.reference or single else state.get("best")
    last_shown = None if single else state.get("last")
    messages = generator_messages(
        state["task"],
        best=best_shown,
        last=last_shown,
        suggestion="" if not settings.improver or single else state.get("suggestion", ""),
        window=[] if not settings.memory or single else state["window"],
        constraints=constraints_text(settings.constraints, settings.hardware_limits()),
    )
    branch = state.get("branch")
    stage("generating", state["iteration"], branch)
    started = time.monotonic()
    # seed = base + iteration: a fixed seed would make an identical prompt give identical code
    reply = ask(
        chat_for("generator", settings if branch is None else branch_settings(settings, branch)),
        messages,
        role="generator",
        seed=settings.run_seed + state["iteration"],
        retries=settings.llm_retries,
    )
    code, seconds = extract_code(reply.text), time.monotonic() - started
    generator_called(
        run_archive(settings, state["run_id"]).run_dir,
        iteration=state["iteration"],
        attempt=0,
        messages=messages,
        reply=reply,
        seconds=seconds,
        code=code,
        best_shown=best_shown,
        last_shown=last_shown,
    )
    update = {"code": code, "gen_tokens": reply.tokens, "gen_seconds": seconds}
    if branch is None:
        return Command(update=update, goto="train")
    return Command(goto=Send("train", {**state, **update}))


def branch_settings(settings: Settings, branch: Branch) -> Settings:
    """A branch's Generator temperature: the round's slots spread evenly over base ± spread."""
    if branch["size"] <= 1:
        return settings
    offset = TEMPERATURE_SPREAD * (2 * branch["slot"] / (branch["size"] - 1) - 1)
    temperature = min(2.0, max(0.0, round(settings.generator_temperature + offset, 3)))
    return settings.model_copy(update={"generator_temperature": temperature})


def train(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Score the candidate through the `train_candidate` tool and archive it before moving on.

    In a parallel round's branch only `round` is written; `improve` joins the round.
    """
    settings = context(runtime)
    iteration, code = state["iteration"], state.get("code")
    result: EvalResult
    if code is None:
        result = new_result("no_code", "the reply contained no Python code block", code_hash(""))
    else:
        stage("training", iteration, state.get("branch"))
        result = train_candidate_for(settings).invoke({"code": code})
    run_archive(settings, state["run_id"]).record_candidate(
        iteration, code, result, state.get("gen_tokens", 0), state.get("gen_seconds")
    )
    candidate = Candidate(iteration=iteration, code=code or "", result=result)
    counted = tally(Tally(best=state.get("best"), ok_count=state.get("ok_count", 0)), candidate)
    update: dict[str, Any]
    if state.get("branch") is not None:  # a round's branch: `improve` joins the round
        update = {"round": [candidate]}
    else:
        update = {"last": candidate, "iteration": iteration + 1, "code": None, **counted}
    best_acc = best_accuracy(counted["best"])
    ok_count = counted["ok_count"]
    get_stream_writer()(
        {
            "event": "candidate",
            "iteration": iteration,
            "iterations": settings.iterations,
            "kind": result["kind"],
            "val_accuracy": result.get("val_accuracy"),
            "best_val_accuracy": best_acc,
            "ok": ok_count,  # in a round: before this round, plus this one
            "worker": worker_of(state.get("branch")),
            "message": result["message"][:ERROR_CHARS],
        }
    )
    return update


def stop_reason(state: State, settings: Settings) -> str | None:
    best = best_accuracy(state.get("best"))
    target = settings.target_accuracy
    if target is not None and best is not None and best >= target:
        return "target"
    if state["iteration"] >= settings.iterations:
        return "budget"
    return None


def improve(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """Close the pending triple with this outcome, then ask the Improver for the next change.

    After a parallel round, the round is joined first (`join_round`); each of its candidates
    closes its own copy of the pending triple (the round's suggestion, its own outcome), in
    iteration order, and the one Improver call sees the round's focus in full and every outcome
    of the round in one line each.
    """
    settings = context(runtime)
    update: dict[str, Any] = {}
    batch: list[tuple[Candidate, float | None]] = []  # (candidate, best accuracy after it)
    if state.get("round"):
        update, batch = join_round(state)
        state = cast(State, {**state, **update})
    last = state["last"]
    assert last is not None
    best = state.get("best")
    best_acc = best["result"]["val_accuracy"] if best else None
    batch = batch or [(last, best_acc)]
    window = list(state["window"])
    closed: list[Triple] = []
    if pending := state.get("pending"):
        closed = [
            Triple(
                iteration=candidate["iteration"],
                problem=pending["problem"],
                suggestion=pending["suggestion"],
                outcome=outcome_text(candidate["result"], acc),
            )
            for candidate, acc in batch
        ]
        window = [*window, *closed][-settings.history_k :]
        update["window"] = WindowUpdate(append=closed, keep=settings.history_k)
    reason = stop_reason(state, settings)
    advice: Pending | None = None
    tokens = 0
    archive = run_archive(settings, state["run_id"])
    read = batch[-1][0]["iteration"]  # the Improver's call belongs to the result it read
    # also the live view's cue that every candidate up to `read` is in (a round is joined)
    stage("advising", read, ok=state.get("ok_count", 0), best_val_accuracy=best_acc)
    if reason is None and settings.improver and not settings.single_shot:
        messages = improver_messages(
            state["task"],
            last=last,
            best=best,
            window=window if settings.memory else [],
            round_candidates=[candidate for candidate, _ in batch],
        )
        started = time.monotonic()
        reply = ask(
            chat_for("improver", settings),
            messages,
            role="improver",
            seed=settings.run_seed + read,
            retries=settings.llm_retries,
        )
        tokens = reply.tokens
        parsed = parse_improvement(reply.text)
        improver_called(
            archive.run_dir,
            iteration=read,
            messages=messages,
            reply=reply,
            seconds=time.monotonic() - started,
            advice=parsed,
        )
        advice = _advice(parsed, last)
    for n, (candidate, _) in enumerate(batch):
        archive.record_improvement(
            candidate["iteration"],
            dict(closed[n]) if closed else None,
            advice["problem"] if advice else None,
            advice["suggestion"] if advice else None,
            tokens if n == len(batch) - 1 else 0,  # one Improver call: its tokens count once
        )
    update["pending"] = advice
    update["suggestion"] = advice["suggestion"] if advice else ""
    update["stop_reason"] = reason
    update.update(_round_size(state, settings))
    return update


def join_round(state: State) -> tuple[dict[str, Any], list[tuple[Candidate, float | None]]]:
    """Take in a finished parallel round, in iteration order.

    Returns the state update (`iteration` past the round, `ok_count` and `best` with every
    candidate counted, `last` = the round's focus: its best success, else its highest
    iteration; `round` emptied) and, for each candidate, the best accuracy after it: its
    outcome's "best so far", as the classic loop would have written it.
    """
    candidates = state["round"]  # merge_round keeps them in iteration order
    counted = Tally(best=state.get("best"), ok_count=state.get("ok_count", 0))
    batch: list[tuple[Candidate, float | None]] = []
    focus: Tally = Tally(best=None, ok_count=0)  # the round's own best success
    for candidate in candidates:
        counted = tally(counted, candidate)
        focus = tally(focus, candidate)
        batch.append((candidate, best_accuracy(counted["best"])))
    update = {
        "round": None,  # merge_round: empty it for the next round
        "iteration": candidates[-1]["iteration"] + 1,
        "last": focus["best"] or candidates[-1],
        **counted,
    }
    return update, batch


def _round_size(state: State, settings: Settings) -> dict[str, Any]:
    """The next round's size, written only when a run is (or was) parallel: with --parallel 1
    the state stays exactly as the classic loop's. The budget counts candidates, so the last
    round is cut to what is left."""
    size = max(1, min(settings.parallel, settings.iterations - state["iteration"]))
    return {"round_size": size} if size > 1 or state.get("round_size", 1) > 1 else {}


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


def fan_out(state: State) -> str | list[Send]:
    """The next round: "generate" for one candidate (the classic loop), else one `Send` per
    candidate, each with its own iteration number and slot and what its prompt needs."""
    size = state.get("round_size", 1)
    if size <= 1:
        return "generate"
    values: dict[str, Any] = dict(state)
    shared = {key: values[key] for key in BRANCH_KEYS if key in values}
    start = state["iteration"]
    return [
        Send("generate", {**shared, "iteration": start + n, "branch": Branch(slot=n, size=size)})
        for n in range(size)
    ]


def route_after_improve(state: State) -> str | list[Send]:
    return "end" if state.get("stop_reason") else fan_out(state)
