"""Ablations: variants of the search x seeds, on one budget, compared in a table and a plot.

    python -m agent ablate --variants full,no_history,single_shot --seeds 0,1,2 --iterations 50
        [--name NAME] [--json] [-- other `python -m agent.run` flags, e.g. --train-limit 5000]

Each (variant, seed) pair is a normal `python -m agent.run` under its own run id
`<name>-<variant>-s<seed>`, so its archive, report and resume work as for any run, and running
the same command again resumes an interrupted ablation (finished runs are only read). Every run
gets the same budget (`--iterations`); seed s sets both the LLM sampling seed (`run_seed`) and
the training seed (`seed`), so the replicates differ in every random draw. Each variant sets all
of the ablation switches, so a switch left on in `.env` cannot leak into another variant.

Variants: full (the method); no_history / no_memory (no window), no_improver, no_reference,
no_novelty, no_auto_fix, no_dead_layers, paper_prompts (each takes one part
away); single_shot (the task alone, no Improver: the baseline) and best_of_k (the same, a repeat
asked again); diff and auto (the Generator edits the best network with SEARCH/REPLACE blocks);
repair, resample and repair_resample (two LLM-side fixes per failed iteration); concrete_advice
(the Improver's advice a layer-level move, never a repeat), tournament, copy_heat and fill_in
(the Generator shown another good network than the best, sampled hotter
after it copied, or asked for the feature layers alone). Runs skip the
final test unless the extra flags ask for it (`-- --final-top-k 1`): the comparison is about the
searches.

Writes `<runs dir>/ablations/<name>/`: `results.json` (every run's best-so-far curve and numbers,
and per variant the mean, sample standard deviation, min and max over seeds at each iteration),
`comparison.md` (the table) and `curves.png` (mean best-so-far per variant, ± one standard
deviation shaded). Until a run's first trained candidate its best so far counts as 0, in the
curves and in the table: averaging only the runs that have found something would let a variant's
mean best-so-far fall, and hide that the others have found nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from agent.archive.paths import load_final_test, run_path
from agent.results.numbers import archive_rows, best_so_far
from agent.results.plots import plot_ablation

# Each variant: the switches it turns over from the full method's setting (SWITCHES)
VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no_history": ("memory",),
    "no_memory": ("memory",),  # the same switch as no_history, under the name
    "no_improver": ("improver",),
    "no_reference": ("reference",),
    "no_novelty": ("novelty",),
    "no_auto_fix": ("auto_fix",),
    "no_dead_layers": ("dead_layers",),  # dead layers trained (agent/check/dead_layers.py)
    "paper_prompts": ("paper_prompts",),
    # the baseline, plain sampling with the same prompts: no window, no Improver, no fixes
    "single_shot": ("single_shot", "novelty", "auto_fix"),
    # best-of-k resampling: plain sampling, but a repeat is asked again (hotter) instead of
    # being spent; the best of the k samples is the result
    "best_of_k": ("single_shot", "auto_fix"),
    # the full method whose Generator edits the best network with SEARCH/REPLACE blocks
    # (EDIT_MODES below): strictly (diff), or blocks or a whole module (auto)
    "diff": (),
    "auto": (),
    # the full method plus LLM-side fixes of a failed program (LLM_FIXES below)
    "repair": (),
    "resample": (),
    "repair_resample": (),
    # the full method with one of the switches against a Generator that copies what it is shown
    # (agent/steer/): another parent than the best, hotter after copies, layers only
    "concrete_advice": ("concrete_advice",),  # the move menu, repeated or vague advice replaced
    "tournament": ("tournament",),
    "copy_heat": ("copy_heat",),
    "fill_in": ("fill_in",),
}
# The Generator's --edit-mode of each variant (agent/replies/edits.py); every other variant: full
EDIT_MODES = {"diff": "diff", "auto": "auto"}
# The LLM-side fixes of each variant (agent/check/llm_fixes.py): (repair_attempts, fix_order); every
# other variant none, whatever `.env` says
LLM_FIXES: dict[str, tuple[int, str]] = {
    "repair": (2, "repair"),
    "resample": (2, "resample"),
    "repair_resample": (2, "repair,resample"),
}
NO_LLM_FIXES = (0, "repair,resample")
SWITCHES = {
    "memory": True,
    "improver": True,
    "reference": True,
    "single_shot": False,
    "novelty": True,
    "auto_fix": True,
    "dead_layers": True,
    "concrete_advice": False,
    "paper_prompts": False,  # on: --prompt-style paper (the long prompts), off: short
    "tournament": False,  # on: --parent tournament, off: --parent best
    "copy_heat": False,
    "fill_in": False,
}
ABLATIONS_DIR = "ablations"


def run_id_for(name: str, variant: str, seed: int) -> str:
    return f"{name}-{variant}-s{seed}"


def run_argv(run_id: str, variant: str, seed: int, iterations: int, extra: list[str]) -> list[str]:
    """The `agent.run` command line of one (variant, seed) run."""
    argv = ["--run-id", run_id, "--iterations", str(iterations)]
    argv += ["--run-seed", str(seed), "--seed", str(seed)]
    for switch, full in SWITCHES.items():
        on = full != (switch in VARIANTS[variant])
        if switch == "paper_prompts":
            argv += ["--prompt-style", "paper" if on else "short"]
            continue
        if switch == "tournament":
            argv += ["--parent", "tournament" if on else "best"]
            continue
        flag = switch.replace("_", "-")
        argv.append(f"--{flag}" if on else f"--no-{flag}")
    argv += ["--edit-mode", EDIT_MODES.get(variant, "full")]
    attempts, order = LLM_FIXES.get(variant, NO_LLM_FIXES)
    argv += ["--repair-attempts", str(attempts), "--fix-order", order]
    if not any(a.startswith("--final-top-k") for a in extra):
        argv += ["--final-top-k", "0"]
    return argv + extra


def run_numbers(run_dir: Path, iterations: int) -> dict[str, Any]:
    """One run's curve and numbers, from its archive. A run stopped early on its target keeps
    its last best for the rest of the budget."""
    rows = archive_rows(run_dir)
    curve = best_so_far(rows)[:iterations]
    if curve and len(curve) < iterations:
        curve += [curve[-1]] * (iterations - len(curve))
    ok = [r for r in rows if r["status"] == "ok"]
    final = load_final_test(run_dir)
    return {
        "run_id": run_dir.name,
        "iterations": len(rows),
        "curve": curve,
        "best_val_accuracy": curve[-1] if curve else None,
        "success_rate": len(ok) / len(rows) if rows else 0.0,
        "first_success": ok[0]["iteration"] if ok else None,
        "tokens": sum(r["gen_tokens"] + r["improver_tokens"] for r in rows),
        "test_accuracy": final[0]["test_accuracy"] if final else None,
    }


def stats(values: list[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (0 for one value), min and max of the values given."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"n": len(xs), "mean": mean, "std": std, "min": min(xs), "max": max(xs)}


def aggregate(runs: list[dict[str, Any]], iterations: int) -> dict[str, Any]:
    """A variant's seeds together: the curve's statistics per iteration, and the end numbers
    (a run with nothing trained yet counts as 0)."""
    curves = [[v or 0.0 for v in r["curve"]] for r in runs]
    curves = [c + [c[-1] if c else 0.0] * (iterations - len(c)) for c in curves]
    return {
        "runs": len(runs),
        "curve": [stats([c[i] for c in curves]) for i in range(iterations)],
        "best_val_accuracy": stats([r["best_val_accuracy"] or 0.0 for r in runs]),
        "success_rate": stats([r["success_rate"] for r in runs]),
        "first_success": stats([r["first_success"] for r in runs]),
        "tokens": stats([r["tokens"] for r in runs]),
        "test_accuracy": stats([r["test_accuracy"] for r in runs]),
    }


def _pm(s: dict[str, Any], digits: int = 4, percent: bool = False) -> str:
    if s["mean"] is None:
        return "-"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{s['mean'] * scale:.{digits}f}{unit}"
    return text + (f" ± {s['std'] * scale:.{digits}f}{unit}" if s["n"] > 1 else "")


def comparison_table(results: dict[str, Any]) -> str:
    head = [
        "variant",
        "runs",
        "best val accuracy (mean ± std)",
        "min to max",
        "success rate",
        "first success (iteration)",
        "LLM tokens",
        "test accuracy of best",
    ]
    lines = [
        f"# Ablation {results['name']}",
        f"{results['iterations']} candidates per run, seeds {results['seeds']}; "
        "mean ± sample standard deviation over seeds. Validation accuracy chose every best; "
        "test accuracy (when a final test ran) is shown, never used.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for variant, agg in results["variants"].items():
        best = agg["best_val_accuracy"]
        spread = "-" if best["mean"] is None else f"{best['min']:.4f} to {best['max']:.4f}"
        row = [
            variant,
            str(agg["runs"]),
            _pm(best),
            spread,
            _pm(agg["success_rate"], 1, percent=True),
            _pm(agg["first_success"], 1),
            _pm(agg["tokens"], 0),
            _pm(agg["test_accuracy"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "![best-so-far validation accuracy](curves.png)"]
    return "\n".join(lines) + "\n"


def collect(
    runs_dir: Path, name: str, variants: list[str], seeds: list[int], iterations: int
) -> dict[str, Any]:
    """Read every run of the ablation and aggregate; the runs must exist."""
    per_run: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        run_dirs = [run_path(runs_dir, run_id_for(name, variant, seed)) for seed in seeds]
        per_run[variant] = [run_numbers(path, iterations) for path in run_dirs]
    return {
        "name": name,
        "iterations": iterations,
        "seeds": seeds,
        "variants": {v: aggregate(per_run[v], iterations) for v in variants},
        "runs": per_run,
    }


def write_outputs(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "comparison.md").write_text(comparison_table(results), encoding="utf-8")
    plot_ablation(results, out / "curves.png")


def _agent_run(argv: list[str]) -> int:
    """One search to its end, in this process, its output on stderr; its exit code. `argv` is
    the run's command line (the variant's flags, then the user's), read by the flags parser."""
    from agent.flags import parse_setting_flags
    from agent.search import run_to_end

    run_id = None
    if "--run-id" in argv:  # the run's id is no setting: it names the run the flags are for
        at = argv.index("--run-id")
        run_id, argv = argv[at + 1], argv[:at] + argv[at + 2 :]
    with contextlib.redirect_stdout(sys.stderr), contextlib.ExitStack() as stack:
        try:
            flags = parse_setting_flags(argv)
        except SystemExit as exc:  # argparse refusing a flag
            return exc.code if isinstance(exc.code, int) else 2
        return run_to_end(flags, run_id, stack)[0]


def run_one(
    run_id: str,
    variant: str,
    seed: int,
    extra: list[str],
    *,
    iterations: int | None = None,
    llm_calls: int | None = None,
) -> int:
    """One (variant, seed) run, to a budget of iterations or of LLM calls; its exit code.

    A budget of calls is the run's own `--llm-calls` setting (the loop stops before the next
    Improver call once the search's state counts that many), with as many iterations allowed as
    calls, since every iteration makes at least one. A run stops at most one
    iteration's calls (Improver, Generator, its re-asks) past the budget; a repair or resample
    is never asked once the budget is spent.
    """
    if llm_calls is None:
        assert iterations is not None
        return _agent_run(run_argv(run_id, variant, seed, iterations, extra))
    budget = ["--llm-calls", str(llm_calls)]
    return _agent_run(run_argv(run_id, variant, seed, llm_calls, [*budget, *extra]))


def run_all(
    runs_dir: Path,
    name: str,
    variants: list[str],
    seeds: list[int],
    extra: list[str],
    *,
    iterations: int | None = None,
    llm_calls: int | None = None,
) -> int:
    """Every (variant, seed) run of ablation `name`, to one budget; the first failing exit code,
    or 0. Seeds outermost: an early stop leaves every variant comparable."""
    total = len(variants) * len(seeds)
    n = 0
    for seed in seeds:  # seeds outermost: an early stop leaves every variant comparable
        for variant in variants:
            n += 1
            run_id = run_id_for(name, variant, seed)
            print(f"nasloop: ablation {name} [{n}/{total}]: {run_id}", file=sys.stderr, flush=True)
            code = run_one(run_id, variant, seed, extra, iterations=iterations, llm_calls=llm_calls)
            if code != 0:
                print(
                    f"nasloop: ablation {name} stopped at {run_id} (exit {code}); run the same "
                    "command again to resume it",
                    file=sys.stderr,
                )
                return code
    return 0


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        known = ", ".join(VARIANTS)
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown}: choose from {known}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers such as 0,1,2: {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0 such as 0,1,2: {text!r}")
    return seeds


def split_run_flags(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """This command's own flags, and those after `--`, which every run's agent.run gets."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_run_flags(argv)
    parser = argparse.ArgumentParser(prog="python -m agent ablate", description=__doc__)
    parser.add_argument("--variants", type=_names, default=["full", "single_shot"])
    parser.add_argument("--seeds", type=_seeds, default=[0, 1])
    parser.add_argument("--iterations", type=int, required=True, help="budget of every run")
    parser.add_argument("--name", help="default: ablate-<date>-<time>")
    parser.add_argument("--json", action="store_true", help="print results.json on stdout")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")

    from agent.flags import parse_setting_flags
    from agent.settings import load_settings
    from sandbox.settings import SettingsError, bad_input

    name = args.name or time.strftime("ablate-%Y%m%d-%H%M%S")
    fields = parse_setting_flags(extra)  # a bad flag stops us here
    try:
        runs_dir = load_settings(**fields).runs_dir
    except SettingsError as exc:
        return bad_input(exc)
    code = run_all(runs_dir, name, args.variants, args.seeds, extra, iterations=args.iterations)
    if code != 0:
        return code
    results = collect(runs_dir, name, args.variants, args.seeds, args.iterations)
    out = runs_dir / ABLATIONS_DIR / name
    write_outputs(results, out)
    if args.json:
        print(json.dumps({"name": name, "dir": str(out), "variants": results["variants"]}))
    else:
        print(f"ablation {name}: {out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
