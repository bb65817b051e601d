"""The graph's nodes: set up the task, generate a candidate, train it, improve on the outcome.

Each node reads its settings from the LangGraph runtime context (`Settings`), so the CLI, Studio
and callers drive the same code; chat clients and archives are built once per settings.

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

from langchain_core.messages import BaseMessage
from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from agent.archive.candidates import RunArchive
from agent.archive.lineage import parents_of
from agent.archive.observe import (
    generator_called,
    improvement_recorded,
    improver_called,
    stage,
    worker_of,
)
from agent.archive.paths import run_path
from agent.check.ask_again import Again, fixer, reasker
from agent.check.cascade import sandbox_checks
from agent.check.llm_fixes import calls_left, room_for_advice
from agent.check.step import Iteration, attempt_recorder, check_and_train
from agent.llm.client import ask, make_chat
from agent.llm.structured import ask_for_advice
from agent.prompts import ERROR_CHARS, SUGGESTION_CHARS, improver_messages, outcome_text
from agent.replies.advice import parse_improvement
from agent.replies.advice_cleaning import clean_advice, without_echo
from agent.replies.advice_moves import advice_menu, closed_triple, settle_advice
from agent.replies.edits import EditContext
from agent.replies.fill_in import read_reply
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
    join_round,
    push_triples,
    tally,
)
from agent.steer import request
from sandbox.result import EvalResult
from tools.train_candidate import executor_for, task_for, train_candidate_for

# What a parallel branch's prompt and progress event need from the state (its Send payload)
BRANCH_KEYS = ("run_id", "task", "best", "last", "suggestion", "window", "ok_count", "calls_spent")


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
        "calls_spent": 0,
    }
    return {**update, **_round_size(cast(State, update), settings)}


def generator_prompt(state: State, settings: Settings) -> tuple[list[BaseMessage], str | None]:
    """The Generator's messages for this state and the code its edit blocks apply to (None: a
    whole module, or layers, is asked for): agent/steer/request.py's, with the run's archive."""
    return request.generator_prompt(state, settings, run_archive(settings, state["run_id"]))


def generate(state: State, runtime: Runtime[Settings]) -> Command[str]:
    """Ask the Generator for one module (or edits to the best one); read its code, never run it.

    Then on to `train`: the graph's own step, or, in a parallel round's branch, a `Send` that
    carries this branch's code to its own `train`.
    """
    settings = context(runtime)
    stage("generating", state["iteration"], state.get("branch"))
    messages, base = generator_prompt(state, settings)
    archive = run_archive(settings, state["run_id"])
    started = time.monotonic()
    # seed = base + iteration: a fixed seed would make an identical prompt give identical code
    reply = ask(
        chat_for("generator", request.generator_settings(state, settings, archive)),
        messages,
        role="generator",
        seed=settings.run_seed + state["iteration"],
        retries=settings.llm_retries,
    )
    seconds = time.monotonic() - started
    fill_in = state["task"] if settings.fill_in else None
    read = read_reply(reply.text, base, settings.edit_mode, fill_in)
    parents = parents_of(*request.shown(state, settings, archive))
    run_dir = archive.run_dir
    generator_called(run_dir, state["iteration"], 0, messages, reply, seconds, read, parents)
    update: dict[str, Any] = {"code": read.code, "edit_error": read.error}
    update.update(prompt=messages, edit_base=base, gen_tokens=reply.tokens, gen_seconds=seconds)
    update["calls_spent"] = state.get("calls_spent", 0) + 1
    if state.get("branch") is None:
        return Command(update=update, goto="train")
    return Command(goto=Send("train", {**state, **update}))


def again_for(state: State, settings: Settings, edits: EditContext) -> Again:
    """How this iteration asks its Generator again (re-asks, repairs, resamples), with the prompt
    `generate` built; their edit blocks apply as `edits` says."""
    archive = run_archive(settings, state["run_id"])
    base = request.generator_settings(state, settings, archive)
    return Again(
        chat_at=lambda t: chat_for(
            "generator", base.model_copy(update={"generator_temperature": t})
        ),
        prompt=list(state.get("prompt") or []),
        task=state["task"],
        temperature=base.generator_temperature,
        seed=settings.run_seed + state["iteration"],
        retries=settings.llm_retries,
        run_dir=archive.run_dir,
        iteration=state["iteration"],
        edit_mode=settings.edit_mode,
        edits=edits,
        fill_in=settings.fill_in,
    )


def train(state: State, runtime: Runtime[Settings]) -> dict[str, Any]:
    """The check step (novelty, lint, dry run, fixes), then training through the
    `train_candidate` tool; every attempt and the iteration are archived before moving on.

    In a parallel round's branch only `round` is written; `improve` joins the round.
    """
    settings = context(runtime)
    iteration = state["iteration"]
    archive = run_archive(settings, state["run_id"])
    checks = sandbox_checks(settings, state["task"], executor_for)  # None with auto-fix off
    branch = state.get("branch")
    stage("checking" if checks or settings.novelty else "training", iteration, branch)
    edits = EditContext(state.get("edit_base"), state.get("edit_error"))  # as generate read it
    spent = state.get("calls_spent", 0)  # this iteration's first ask included

    def train_one(code: str) -> dict[str, Any]:
        stage("training", iteration, branch)
        return dict(train_candidate_for(settings).invoke({"code": code}))

    again = again_for(state, settings, edits)
    final = check_and_train(
        state.get("code"),
        Iteration(
            seen=archive.seen_before(iteration),  # from disk: a resumed run knows them too
            train=train_one,
            record=attempt_recorder(archive, iteration),
            reask=reasker(again) if settings.novelty else None,
            checks=checks,
            iteration=iteration,
            edits=edits,
            ask_fix=fixer(again) if settings.repair_attempts else None,
            fix_plan=settings.fix_plan(),
            calls_left=calls_left(settings.llm_calls, lambda: spent + again.calls),
        ),
    )
    code, result = final.code, cast(EvalResult, final.result)  # every attempt's is one
    tokens = state.get("gen_tokens", 0) + again.tokens
    seconds = (state.get("gen_seconds") or 0.0) + again.seconds
    archive.record_candidate(iteration, code, result, tokens, seconds)
    calls = 1 + again.calls
    candidate = Candidate(iteration=iteration, code=code or "", result=result, calls=calls)
    counted = tally(Tally(best=state.get("best"), ok_count=state.get("ok_count", 0)), candidate)
    update: dict[str, Any]
    if state.get("branch") is not None:  # a round's branch: `improve` joins the round
        update = {"round": [candidate]}
    else:
        update = {"last": candidate, "iteration": iteration + 1, "code": None, **counted}
        update.update(calls_spent=spent + again.calls, prompt=None)  # the prompt's work is done
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
    calls = settings.llm_calls  # a budget of calls, every role's
    if calls is not None and state.get("calls_spent", 0) >= calls:
        return "llm_calls"
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
        closed = [  # each with whether its candidate followed the advice (where checkable)
            closed_triple(pending, candidate, outcome_text(candidate["result"], acc))
            for candidate, acc in batch
        ]
        window = push_triples(window, closed, settings.history_k)
        update["window"] = WindowUpdate(append=closed, keep=settings.history_k)
    reason = stop_reason(state, settings)
    advice: Pending | None = None
    tokens = 0
    archive = run_archive(settings, state["run_id"])
    read = batch[-1][0]["iteration"]  # the Improver's call belongs to the result it read
    # also the live view's cue that every candidate up to `read` is in (a round is joined)
    stage("advising", read, ok=state.get("ok_count", 0), best_val_accuracy=best_acc)
    if (
        reason is None
        and settings.improver
        and not settings.single_shot
        and room_for_advice(settings.llm_calls, state.get("calls_spent", 0))
    ):
        # the network the next prompt shows to change (with the tournament, maybe not `last`)
        advised = request.advised(state, settings, archive, last)
        menu = advice_menu(advised, state["task"]) if settings.concrete_advice else []
        messages = improver_messages(
            state["task"],
            last=advised,
            best=best,
            window=window if settings.memory else [],
            round_candidates=[candidate for candidate, _ in batch],
            moves=[move.text for move in menu],
        )
        started = time.monotonic()
        reply = ask_for_advice(
            chat_for("improver", settings),
            messages,
            seed=settings.run_seed + read,
            retries=settings.llm_retries,
        )
        tokens = reply.tokens
        update["calls_spent"] = state.get("calls_spent", 0) + 1
        advice = clean_advice(parse_improvement(reply.text), SUGGESTION_CHARS)
        advice = without_echo(advice, [candidate["result"] for candidate, _ in batch])
        improver_called(
            archive.run_dir,
            iteration=read,
            messages=messages,
            reply=reply,
            seconds=time.monotonic() - started,
            advice={"problem": advice["problem"], "suggestion": advice["suggestion"]},
        )
        # after a success: a pick from the menu resolved, repeated or generic advice replaced
        advice = settle_advice(advice, menu, window, advised.get("code"))
    improvement_recorded(archive, [c["iteration"] for c, _ in batch], closed, advice, tokens)
    update["pending"] = advice
    update["suggestion"] = advice["suggestion"] if advice else ""
    update["stop_reason"] = reason
    update.update(_round_size(cast(State, {**state, **update}), settings))  # calls: this one too
    return update


def _round_size(state: State, settings: Settings) -> dict[str, Any]:
    """The next round's size, written only when a run is (or was) parallel: with --parallel 1
    the state stays exactly as the classic loop's. The budget counts candidates, so the last
    round is cut to what is left; so does a budget of LLM calls (each branch asks the Generator
    once), so that a round never spends calls past it."""
    left = settings.iterations - state["iteration"]
    if settings.llm_calls is not None and settings.parallel > 1:
        left = min(left, settings.llm_calls - state.get("calls_spent", 0))
    size = max(1, min(settings.parallel, left))
    return {"round_size": size} if size > 1 or state.get("round_size", 1) > 1 else {}


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
