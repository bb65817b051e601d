"""The next Generator call, read from the state, the settings and the run archive: the network
its prompt shows (`shown`), its messages and edit base (`generator_prompt`), its sampling
settings (`generator_settings`), and the network the Improver's advice must be about (`advised`).

With `--parent tournament` the network shown to change is drawn (agent/steer/parents.py) once
per round, from the candidates archived before the round's first iteration, so the Improver in
`improve` (which asks before that round) sees the same network its advice is for. With
`--copy-heat` the round's temperature is the Generator's, hotter after copies
(agent/steer/heat.py); a parallel round's slots then spread around it. With `--fill-in` the
prompt is the fill-in request (agent/prompts/fill_in.py) in either style, and no edit blocks
are asked for.
"""

from __future__ import annotations

from typing import NamedTuple

from langchain_core.messages import BaseMessage

from agent.archive.candidates import RunArchive
from agent.prompts import constraints_text, generator_messages
from agent.prompts.edit import edit_base, edit_request
from agent.prompts.fill_in import fill_in_messages
from agent.prompts.short import short_generator_messages
from agent.settings import Settings
from agent.state import Branch, Candidate, State
from agent.steer.heat import copies_before, heated
from agent.steer.parents import pool, tournament

TEMPERATURE_SPREAD = 0.2  # a parallel round's Generator temperatures span base ± this


class Shown(NamedTuple):
    """What a Generator prompt shows: the network to change (the best, or the tournament's
    draw: `drawn`) and the last candidate (None: not shown)."""

    base: Candidate | None
    last: Candidate | None
    drawn: bool = False


def round_start(state: State) -> int:
    """The first iteration of the round `state` belongs to (its own, in the classic loop)."""
    branch = state.get("branch")
    return state["iteration"] - (branch["slot"] if branch else 0)


def shown(state: State, settings: Settings, archive: RunArchive) -> Shown:
    """The networks this state's Generator prompt shows."""
    single = settings.single_shot  # the baseline: the task alone, every time
    last = None if single else state.get("last")
    if not settings.reference or single:
        return Shown(None, last)
    if settings.parent == "tournament":
        start = round_start(state)
        drawn = tournament(pool(archive, start), settings.run_seed + start)
        if drawn is not None:
            return Shown(drawn, last, drawn=True)
    return Shown(state.get("best"), last)


def generator_prompt(
    state: State, settings: Settings, archive: RunArchive
) -> tuple[list[BaseMessage], str | None]:
    """The Generator's messages for this state (the run's prompt style and edit mode, ablations
    applied) and the code its edit blocks apply to (None: a whole module, or layers, is asked
    for)."""
    single = settings.single_shot
    best, last, drawn = shown(state, settings, archive)
    suggestion = "" if not settings.improver or single else state.get("suggestion", "")
    window = [] if not settings.memory or single else state["window"]
    constraints = constraints_text(settings.constraints, settings.hardware_limits())
    task = state["task"]
    build = generator_messages if settings.prompt_style == "paper" else short_generator_messages
    messages = (fill_in_messages if settings.fill_in else build)(
        task,
        best=best,
        last=last,
        suggestion=suggestion,
        window=window,
        constraints=constraints,
        drawn=drawn,
    )
    if settings.fill_in:  # layers are asked for: nothing to edit
        return messages, None
    base = edit_base(best, settings.edit_mode)
    return edit_request(messages, base, settings, task, suggestion, drawn), base


def advised(state: State, settings: Settings, archive: RunArchive, last: Candidate) -> Candidate:
    """The network the Improver's advice (and its menu of moves) is about: `last`, except with
    the tournament after `last` trained, when the next prompt shows another network to change:
    then that one. `state` is the state the next round starts from."""
    if settings.parent != "tournament" or (last.get("result") or {}).get("status") != "ok":
        return last
    return shown(state, settings, archive).base or last


def generator_settings(state: State, settings: Settings, archive: RunArchive) -> Settings:
    """The settings this state's Generator is asked with: its temperature, hotter after copies
    with `copy_heat`, then spread for a parallel round's slot."""
    if settings.copy_heat:
        copies = copies_before(archive, round_start(state))
        temperature = heated(settings.generator_temperature, copies)
        settings = settings.model_copy(update={"generator_temperature": temperature})
    branch = state.get("branch")
    return settings if branch is None else branch_settings(settings, branch)


def branch_settings(settings: Settings, branch: Branch) -> Settings:
    """A branch's Generator temperature: the round's slots spread evenly over base ± spread."""
    if branch["size"] <= 1:
        return settings
    offset = TEMPERATURE_SPREAD * (2 * branch["slot"] / (branch["size"] - 1) - 1)
    temperature = min(2.0, max(0.0, round(settings.generator_temperature + offset, 3)))
    return settings.model_copy(update={"generator_temperature": temperature})
