"""The check step of one iteration: novelty, then the cheap cascade, then training.

    Generator's code ─▶ seen before? ─yes─▶ re-ask (≤ REASKS, hotter) ─▶ still seen: `duplicate`
                           │ no
                           ▼
                  lint on the host ─fail─▶ mechanical fix? ─yes─▶ (the fixed code, from the top)
                           │ ok                  │ no: the lint failure is the result
                           ▼
               dry run in the sandbox ─fail─▶ mechanical fix? (as above; a passed dry run whose
                           │ ok                 layers get no gradient fails as `dead_layers`)
                           ▼
               network seen before? ─yes─▶ re-ask, as above (the dry run's architecture
                           │ no             fingerprint: the same network in other words)
                           ▼
                   one-epoch training

    still failed ─▶ LLM-side fix (≤ repair_attempts, in fix_order: a repair request showing the
                    failing lines, or a hotter resample told the error) ─▶ its answer, from the
                    top of the cascade (a program already seen: `duplicate`, that strategy ends)

It is a function the `train` node calls, not a graph node of its own: a parallel round's branch
then needs no extra hop (its `Send` goes to `train` as before), one checkpointed step covers one
iteration's attempts (a node re-run after a crash rewrites the same numbered attempts), and the
graph stays the paper's generate → train → improve, the shape LangGraph Studio shows.

Every program looked at is an archived attempt with its own result (and its diff, for a fix);
the iteration's result is its last attempt's. Without auto-fix there is no lint or dry run: each
program goes straight to training, the paper's protocol (the runner reports the same errors at the
first batch, so the cascade would only add a sandbox round trip when nothing can be fixed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.archive.candidates import ARCH, RunArchive, SeenProgram
from agent.check.llm_fixes import FixRequest
from agent.check.novelty import REASKS, duplicate_result, repeat_note
from agent.replies.edits import EditContext, Reading, bad_edit_result, edit_diff
from sandbox.code import code_hash
from sandbox.result import new_result

NO_CODE = "no_code"
MAX_FIXES = 3  # mechanical fixes per iteration: each one removes one error, three is plenty


@dataclass(frozen=True)
class Fixed:
    """A mechanical fix: its name (imports, in_features, head), the new code, and the diff."""

    name: str
    code: str
    diff: str


class Checks(Protocol):
    """The cheap checks and their mechanical fixes (agent/check/cascade.py: the real ones)."""

    def lint(self, code: str) -> dict[str, Any] | None:
        """A failure result when the code certainly cannot run (nothing executed), else None."""

    def dry_run(self, code: str) -> dict[str, Any]:
        """Build `Net`, one forward pass, in the sandbox: an ok result or the failure."""

    def fix(self, code: str, failure: dict[str, Any], stage: str) -> Fixed | None:
        """A mechanical fix for `failure` found at `stage` (lint, dry_run), or None."""


@dataclass
class Attempt:
    source: str  # generator | reask | fix:<name> | repair | resample
    code: str | None
    result: dict[str, Any]
    stage: str  # where the result came from: novelty, lint, dry_run, train, none
    diff: str = ""
    fingerprint: str | None = None  # the network's, when a dry run computed it
    repeats: SeenProgram | None = None  # set when its network was one tried before


@dataclass
class Iteration:
    """What the check step needs for one iteration; `reask` is None with the novelty check off,
    `checks` None with auto-fix off, `ask_fix` None without LLM-side fixes."""

    seen: dict[str, SeenProgram]
    train: Callable[[str], dict[str, Any]]
    record: Callable[[Attempt], None]
    reask: Callable[[int, str], Reading] | None = None  # (re-ask number, note) -> its reading
    checks: Checks | None = None
    iteration: int = 0
    edits: EditContext = field(default_factory=EditContext)  # the code edit blocks apply to
    ask_fix: Callable[[FixRequest], Reading] | None = None  # an LLM-side fix's answer
    fix_plan: tuple[str, ...] = ()  # the strategy of each LLM-side fix (agent/check/llm_fixes.py)
    calls_left: Callable[[], int | None] | None = None  # what the budget allows (None: no cap)
    recorded: int = 0  # attempts archived so far: the next one's number


def attempt_recorder(archive: RunArchive, iteration: int) -> Callable[[Attempt], None]:
    """Archive each attempt of `iteration` under the next number (0, 1, ...); a run of the
    iteration's node after a crash starts its list again, so no stale attempt survives."""
    archive.forget_attempts(iteration)
    numbers = itertools.count()

    def record(attempt: Attempt) -> None:
        digest = code_hash(attempt.code if attempt.code is not None else "")
        archive.record_attempt(
            iteration,
            next(numbers),
            attempt.source,
            attempt.code,
            digest,
            attempt.result,
            attempt.stage,
            attempt.diff,
            attempt.fingerprint,
        )

    return record


def check_and_train(code: str | None, it: Iteration) -> Attempt:
    """Run one iteration's attempts, archiving each; returns the last (the iteration's result)."""
    source = "generator"
    asks = 1
    edit_error = it.edits.error  # why the latest reply's edit blocks did not fit
    while True:
        while it.reask is not None and code is not None:
            digest = code_hash(code)
            seen = it.seen.get(digest)
            if seen is None:
                break
            last = asks > REASKS
            how = f"the Generator repeated a program on all {asks} asks" if last else "a repeat"
            verdict = _finish(
                it, Attempt(source, code, dict(duplicate_result(digest, seen, how)), "novelty")
            )
            if last:
                return verdict
            code, edit_error = it.reask(asks, repeat_note(seen))
            source, asks = "reask", asks + 1
        if code is None:  # no code, or edit blocks that did not fit the code shown
            return _llm_fixes(_finish(it, _unread(source, edit_error)), it)
        attempt = _cascade(code, source, it)
        if attempt.repeats is None or it.reask is None or asks > REASKS:
            return _llm_fixes(attempt, it)
        # new text, a network tried before (its dry run's fingerprint): asked again as a repeat
        code, edit_error = it.reask(asks, repeat_note(attempt.repeats, network=True))
        source, asks = "reask", asks + 1


def _llm_fixes(last: Attempt, it: Iteration) -> Attempt:
    """Ask the Generator to fix a failed program, as `fix_plan` says, until one trains or the plan
    or the run's budget of calls runs out; returns the iteration's last attempt. A repair needs a
    program: after a reply without code, the last program with code is the one repaired."""
    failing = last  # what the next fix is asked about: never a duplicate
    stuck: set[str] = set()  # strategies that answered with a program already seen
    tries: dict[str, int] = {}
    ask = it.ask_fix
    if ask is None:
        return last
    for strategy in it.fix_plan:
        if last.result["status"] == "ok" or failing.result["kind"] == "duplicate":
            break
        if strategy in stuck or (strategy == "repair" and failing.code is None):
            continue
        left = it.calls_left() if it.calls_left is not None else None
        if left is not None and left < 1:
            break  # the budget never pays for a fix
        tries[strategy] = tries.get(strategy, 0) + 1
        request = FixRequest(
            strategy, tries[strategy], it.recorded, failing.code, failing.result, failing.stage
        )
        code, error = ask(request)
        if code is None:
            last = _finish(it, _unread(strategy, error))
            failing = failing if failing.code is not None else last
            continue
        digest = code_hash(code)
        if digest in it.seen:  # with or without the novelty check: it cannot do better this time
            how = f"a {strategy} answered with a program tried before"
            result = duplicate_result(digest, it.seen[digest], how)
            last = _finish(it, Attempt(strategy, code, dict(result), "novelty"))
            stuck.add(strategy)
            continue
        # a repair's diff: what it changed in the failing module
        diff = edit_diff(failing.code, code) if strategy == "repair" and failing.code else None
        last = failing = _cascade(code, strategy, it, diff)
    return last


def _unread(source: str, edit_error: str | None) -> Attempt:
    """The attempt of a reply with no code: a `bad_edit` when its edit blocks did not fit."""
    if edit_error:
        return Attempt(source, None, dict(bad_edit_result(edit_error)), "none")
    result = new_result(NO_CODE, "the reply contained no Python code block", code_hash(""))
    return Attempt(source, None, dict(result), "none")


def _cascade(code: str, source: str, it: Iteration, diff: str | None = None) -> Attempt:
    if diff is None:  # an edited reply's change to the code shown ("" for a whole module)
        diff = it.edits.diff(code)
    fixes = 0
    while True:
        digest = code_hash(code)
        if source.startswith("fix:") and it.reask is not None and digest in it.seen:
            seen = it.seen[digest]  # a fix that lands on a program already tried: not again
            result = duplicate_result(
                digest, seen, "a mechanical fix led to a program tried before"
            )
            return _finish(it, Attempt(source, code, dict(result), "novelty", diff))
        stage, failure, arch = "train", None, None
        if it.checks is not None:
            failure, stage = it.checks.lint(code), "lint"
            if failure is None:
                dry = it.checks.dry_run(code)
                arch = dry.get("fingerprint") if isinstance(dry.get("fingerprint"), str) else None
                failure, stage = (None, "train") if dry["status"] == "ok" else (dry, "dry_run")
        repeats = it.seen.get(ARCH + arch) if arch and it.reask is not None else None
        if failure is None and repeats is not None:  # the novelty check, by architecture
            how = "the same network as an earlier program (same architecture fingerprint)"
            same = dict(duplicate_result(digest, repeats, how))
            verdict = Attempt(source, code, same, "novelty", diff, arch, repeats)
            return _finish(it, verdict)
        if failure is None:
            return _finish(it, Attempt(source, code, it.train(code), "train", diff, arch))
        fixed = it.checks.fix(code, failure, stage) if it.checks and fixes < MAX_FIXES else None
        _finish(it, Attempt(source, code, failure, stage, diff, arch))
        if fixed is None:
            return Attempt(source, code, failure, stage, diff, arch)
        code, source, diff, fixes = fixed.code, f"fix:{fixed.name}", fixed.diff, fixes + 1


def _finish(it: Iteration, attempt: Attempt) -> Attempt:
    """Archive the attempt, remember its program's outcome for the rest of the iteration."""
    it.record(attempt)
    it.recorded += 1
    if attempt.code is not None and attempt.result["kind"] != "duplicate":
        seen = SeenProgram(
            it.iteration, str(attempt.result["kind"]), str(attempt.result.get("message") or "")
        )
        it.seen[code_hash(attempt.code)] = seen
        if attempt.fingerprint:  # the first program with this network keeps the key
            it.seen.setdefault(ARCH + attempt.fingerprint, seen)
    return attempt
