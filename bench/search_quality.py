"""Search quality: variants of the search x seeds at the same number of LLM calls, compared.

    python -m bench.search_quality (--base-url URL | --model FILE.gguf) [--dataset mnist5k]
        [--variants full,single_shot,...] [--seeds 0,1,2] [--llm-calls 40] [--name NAME]
        [--json FILE] [--plot FILE] [-- other `python -m agent.run` flags, e.g. --train-limit 5000]

One OpenAI-compatible server (a base URL, or `--model` to start the embedded llama-server on that
GGUF file), one dataset. Each (variant, seed) is a run of agent/results/ablate.py's runner with a
budget of LLM calls instead of iterations (Generator + Improver calls, re-asks, repairs and
resamples included, counted from the archive: agent/results/quality.py), so every variant spends
the same calls; the
iterations each one got are reported. Per variant, mean ± sample standard deviation over seeds of
each number in quality.NUMBERS, the fixes that led to a trained net by kind, and the ratio of
`full` to `single_shot`. A run that trained nothing still has every field (None or 0).

The default of a setting is chosen by a stated rule, applied here: the variant with the highest
success rate at equal LLM calls, ties broken by the best validation accuracy (mean over seeds, a
run with nothing trained counting 0). The run's numbers are in `<runs dir>/ablations/<name>/`
(`quality.json`, `quality.md`, `quality.png`) and, when asked, at `--json` and `--plot`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.archive.paths import run_path
from agent.results.ablate import (
    ABLATIONS_DIR,
    VARIANTS,
    run_all,
    run_id_for,
    split_run_flags,
    stats,
)
from agent.results.quality import NUMBERS, run_quality

DEFAULT_VARIANTS = (
    "full",
    "single_shot",
    "best_of_k",
    "no_auto_fix",
    "no_dead_layers",
    "repair",
    "resample",
    "no_novelty",
    "no_memory",
    "no_improver",
    "paper_prompts",
    "diff",
    "auto",
    "concrete_advice",
    "tournament",
    "copy_heat",
    "fill_in",
)
# Numbers where a run with nothing trained counts as 0 in the mean: averaging only the runs that
# found something would reward a variant for failing whole seeds
ZERO_IF_NONE = ("best_val_accuracy",)
RULE = (
    "default = the variant with the highest success rate at equal LLM calls, "
    "ties broken by best validation accuracy"
)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant's seeds together: statistics of every number, and of every fix kind's counts."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in NUMBERS:
        values = [r[key] for r in runs]
        if key in ZERO_IF_NONE:
            values = [v or 0.0 for v in values]
        out[key] = stats(values)
    names = sorted({name for r in runs for name in r["fixes_tried"]})
    out["fixes"] = {
        name: {
            "tried": stats([r["fixes_tried"].get(name, 0) for r in runs]),
            "succeeded": stats([r["fixes_succeeded"].get(name, 0) for r in runs]),
        }
        for name in names
    }
    return out


def ratios(
    variants: dict[str, Any], top: str = "full", base: str = "single_shot"
) -> dict[str, Any]:
    """top's mean over base's mean for every number; None where either is missing or base is 0."""
    if top not in variants or base not in variants:
        return {key: None for key in NUMBERS}
    out: dict[str, float | None] = {}
    for key in NUMBERS:
        a, b = variants[top][key]["mean"], variants[base][key]["mean"]
        out[key] = a / b if a is not None and b else None
    return out


def choose_default(variants: dict[str, Any]) -> str | None:
    """The rule: highest mean success rate, then highest mean best validation accuracy; a tie
    on both keeps the variant listed first (`full` first: today's defaults stay)."""

    def key(name: str) -> tuple[float, float]:
        agg = variants[name]
        return (agg["success_rate"]["mean"] or 0.0, agg["best_val_accuracy"]["mean"] or 0.0)

    return max(variants, key=key) if variants else None


def collect(runs_dir: Path, name: str, variants: list[str], seeds: list[int]) -> dict[str, Any]:
    per_run = {
        v: [run_quality(run_path(runs_dir, run_id_for(name, v, s))) for s in seeds]
        for v in variants
    }
    aggregated = {v: aggregate(per_run[v]) for v in variants}
    return {
        "variants": aggregated,
        "ratios_full_over_single_shot": ratios(aggregated),
        "rule": RULE,
        "default": choose_default(aggregated),
        "runs": per_run,
    }


def _cell(s: dict[str, Any], digits: int, percent: bool = False) -> str:
    if s["mean"] is None:
        return "-"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{s['mean'] * scale:.{digits}f}{unit}"
    return text + (f" ± {s['std'] * scale:.{digits}f}" if s["n"] > 1 else "")


COLUMNS = (  # (header, number, digits, percent)
    ("LLM calls", "llm_calls", 1, False),
    ("iterations", "iterations", 1, False),
    ("success rate", "success_rate", 1, True),
    ("distinct", "distinct_candidates", 1, False),
    ("dups avoided", "duplicates_avoided", 1, False),
    ("bad edits", "bad_edits", 1, False),
    ("fixes ok", "fixes_succeeded_total", 1, False),
    ("longest same-failure streak", "longest_identical_failure_streak", 1, False),
    ("calls to 1st trained", "calls_to_first_trained", 1, False),
    ("best val acc", "best_val_accuracy", 4, False),
    ("mean val acc", "mean_val_accuracy", 4, False),
    ("tokens / trained", "tokens_per_trained", 0, False),
    ("advice followed", "advice_followed_rate", 1, True),
    ("advice replaced", "advice_repeats_replaced", 1, False),
    ("copies", "copies", 1, False),
)


def table(results: dict[str, Any]) -> str:
    head = ["variant", "runs", *(c[0] for c in COLUMNS), "fixes ok by kind"]
    lines = [
        f"# Search quality {results['name']}",
        f"model {results['model']}, dataset {results['dataset']}, budget {results['llm_calls']} "
        f"LLM calls per run, seeds {results['seeds']}; mean ± sample std over seeds "
        "(best val acc counts a run with nothing trained as 0; the other accuracies, calls to "
        "the first trained and tokens per trained average the runs that trained something).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for variant, agg in results["variants"].items():
        fixes = ", ".join(
            f"{k} {v['succeeded']['mean']:.1f}/{v['tried']['mean']:.1f}"
            for k, v in agg["fixes"].items()
        )
        cells = [_cell(agg[key], d, p) for _, key, d, p in COLUMNS]
        lines.append("| " + " | ".join([variant, str(agg["runs"]), *cells, fixes or "-"]) + " |")
    ratio = results["ratios_full_over_single_shot"]
    cells = ["-" if ratio[key] is None else f"{ratio[key]:.2f}x" for _, key, _, _ in COLUMNS]
    lines.append("| " + " | ".join(["full / single_shot", "", *cells, ""]) + " |")
    lines += ["", f"Rule: {results['rule']}.", f"The rule picks: **{results['default']}**."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    from agent.results.plots import pyplot

    plt = pyplot()
    names = list(results["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (key, label) in zip(
        axes,
        (("success_rate", "success rate"), ("best_val_accuracy", "best val accuracy")),
        strict=True,
    ):
        means = [results["variants"][v][key]["mean"] or 0.0 for v in names]
        errors = [results["variants"][v][key]["std"] or 0.0 for v in names]
        ax.bar(
            names, means, yerr=errors, capsize=3, color=[f"C{i % 10}" for i in range(len(names))]
        )
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{results['name']}: {results['llm_calls']} LLM calls per run, "
        f"mean ± std over seeds {results['seeds']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {unknown}: choose from {', '.join(VARIANTS)}"
        )
    return names


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0 such as 0,1,2: {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.search_quality", description=__doc__)
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://host:8080/v1")
    server.add_argument("--model", type=Path, help="a GGUF file: start llama-server on it")
    parser.add_argument("--threads", type=int, help="llama-server threads (default: half)")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--variants", type=_variants, default=list(DEFAULT_VARIANTS))
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2])
    parser.add_argument("--llm-calls", type=int, default=40, help="LLM calls per run")
    parser.add_argument("--name", help="default: quality-<date>-<time>")
    parser.add_argument("--json", type=Path, dest="json_path", help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the bar plot here")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_run_flags(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.llm_calls < 1:
        parser.error("--llm-calls must be at least 1")
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file; give the path of a .gguf file")
    name = args.name or time.strftime("quality-%Y%m%d-%H%M%S")
    if args.base_url is not None:
        return measure(args, name, args.base_url, args.base_url, extra)

    from agent.llm.build import ensure_llama_server
    from agent.llm.embedded_settings import ServerError
    from agent.llm.server import EmbeddedServer

    try:
        server = EmbeddedServer(
            args.model, port=0, threads=args.threads, binary=ensure_llama_server()
        )
        with server:
            return measure(args, name, server.base_url, args.model.name, extra)
    except ServerError as exc:
        print(f"nasloop: llama-server did not start: {exc}", file=sys.stderr)
        return 1


def measure(
    args: argparse.Namespace, name: str, base_url: str, model: str, extra: list[str]
) -> int:
    from agent.flags import parse_setting_flags
    from agent.settings import load_settings
    from sandbox.settings import SettingsError, bad_input

    extra = ["--generator-base-url", base_url, "--dataset", args.dataset, *extra]
    fields = parse_setting_flags(extra)  # a bad flag stops us here
    try:
        runs_dir = load_settings(**fields).runs_dir
    except SettingsError as exc:
        return bad_input(exc)
    code = run_all(runs_dir, name, args.variants, args.seeds, extra, llm_calls=args.llm_calls)
    if code != 0:
        return code
    results = {
        "name": name,
        "model": model,
        "dataset": args.dataset,
        "llm_calls": args.llm_calls,
        "seeds": args.seeds,
        **collect(runs_dir, name, args.variants, args.seeds),
    }
    out = runs_dir / ABLATIONS_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    (out / "quality.json").write_text(text)
    (out / "quality.md").write_text(table(results), encoding="utf-8")
    plot(results, out / "quality.png")
    if args.json_path:
        args.json_path.write_text(text)
    if args.plot:
        plot(results, args.plot)
    print(table(results))
    print(f"search quality {name}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
