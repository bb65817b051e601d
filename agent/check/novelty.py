"""Never spend an iteration on a program already tried: what a repeat is, and what to say about it.

A small model that failed once tends to return the same module again, nearly verbatim, however
the request is worded (0 of 20 trained in the run that showed it: 3 distinct programs in 20
iterations). A program is "the same" when its normalised hash is (comments and layout do not
count), or when its dry run computed the same architecture fingerprint (the leaf modules called,
their hyper-parameters and output shapes, and Net.forward's own ops; names, comments, unused
code and module-level tails aside). The fingerprint needs the dry run, so it is checked with
auto-fix on, after the dry run passed. The run's hashes and fingerprints come from the run
archive (`RunArchive.seen_before`), so a resumed run remembers everything it tried while the
graph state stays small.
"""

from __future__ import annotations

from agent.archive.candidates import SeenProgram
from sandbox.result import EvalResult, new_result

REASKS = 2  # the Generator is asked again at most this often per iteration (fixes not counted)
REASK_TEMPERATURE_STEP = 0.3  # each re-ask samples hotter, to leave the rut the model is in
REASK_SEED_STEP = 1000  # ...and with another seed: same prompt + same seed = same answer


def reask_temperature(base: float, reask: int) -> float:
    return round(min(2.0, base + REASK_TEMPERATURE_STEP * reask), 3)


def what_came_of(seen: SeenProgram) -> str:
    """'failed with shape: ...' or 'trained (ok)': the first outcome of a program, in words."""
    if seen.kind == "ok":
        return "trained (ok)"
    message = " ".join(seen.message.split())[:160]
    return f"failed with {seen.kind}: {message}" if message else f"failed with {seen.kind}"


def repeat_note(seen: SeenProgram, network: bool = False) -> str:
    """The line the Generator gets when it repeated a program (or, `network`, wrote another text
    of a network already tried): which attempt, what came of it."""
    same = "computed the same network as" if network else "was identical to"
    return (
        f"Your answer {same} attempt {seen.iteration}, which {what_came_of(seen)}. "
        "That network was already tried: write a different one (change the layers themselves, "
        "not only names or comments)."
    )


def duplicate_result(code_hash: str, seen: SeenProgram, how: str) -> EvalResult:
    """The result of a program already tried (`how` says how it came back): never trained again."""
    return new_result(
        "duplicate",
        f"{how}: identical to attempt {seen.iteration}, which {what_came_of(seen)}; "
        "not trained again",
        code_hash,
    )
