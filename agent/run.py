"""Headless search: `python -m agent.run [--flags]`, resumable with `--run-id`.

The argparse front of the search. Every flag mirrors a setting (`--history-k` is
NASLOOP_HISTORY_K, and so on; `--help` lists them with their defaults). Everything that can be
checked is checked before a run directory exists: settings, dataset, sandbox, LLM servers. Exit
codes: 0 done, 1 stopped by a failure (resumable), 2 bad input (nothing written), 3 stopped by
an infrastructure fault (the sandbox self-test failed, or the sandbox, its engine or the Ray
cluster failed mid-run: one line with the cause, the fix and the resume command; no candidate is
charged for it), 130 interrupted. A finished search then runs the final test, the export and the
report (`finish`); a failure there is one line on stderr and leaves the exit code at 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, get_args

from agent.archive.lock import RunBusy, RunLock
from agent.archive.paths import mark_embedded, run_path
from agent.llm.client import LLMUnavailable
from agent.search import (
    BAD_INPUT,
    EXIT_INFRASTRUCTURE,
    embedded_llm,
    finish,
    preflight_all,
    resolve,
    search,
)
from agent.settings import OLD_NAMES, Settings
from sandbox.faults import InfrastructureFault
from sandbox.settings import bad_input

# Every setting's flag, in the group `--help` shows it in (a setting in no group is an error).
GROUPS: dict[str, tuple[str, ...]] = {
    "LLM": (
        *("generator_base_url", "generator_model", "generator_api_key"),
        *("generator_temperature", "generator_max_tokens"),
        *("improver_base_url", "improver_model", "improver_api_key"),
        *("improver_temperature", "improver_max_tokens", "llm_timeout_s", "llm_retries"),
    ),
    "search": (
        *("iterations", "history_k", "parallel", "target_accuracy", "improver", "memory"),
        "llm_calls",
        *("reference", "single_shot", "run_seed", "constraints"),
        *("novelty", "auto_fix", "prompt_style"),  # the check step and the Generator's prompt
        "edit_mode",
        *("repair_attempts", "fix_order"),  # the LLM-side fixes of a failed program
    ),
    "sandbox": (
        *("sandbox", "image", "warm_worker", "timeout_s", "memory_mb", "pids_limit"),
        *("scratch_mb", "gpus", "gpu_memory_fraction", "executor", "ray_retries"),
    ),
    "training": (
        *("dataset", "data_dir", "val_size", "split_seed", "train_limit", "epochs"),
        *("batch_size", "lr", "momentum", "weight_decay", "lr_schedule", "seed", "autocast"),
        *("channels_last", "threads"),
    ),
    "limits": ("max_params", "max_flops", "max_peak_memory_mb", "max_latency_ms"),
    "results": ("runs_dir", "final_top_k", "final_epochs", "final_weights"),
}
# Old flags that still work: each sets the positive setting that replaced it, to False
OLD_FLAGS = {"--no-history": "memory"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.run",
        description="Run (or resume) an LLM-driven architecture search. Every setting's flag "
        "mirrors a NASLOOP_* variable (.env.example); a flag given wins over the environment, "
        "and a resumed run keeps its own settings unless a flag changes them.",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--run-id", help="resume this run (or start a new run with this id)")
    run.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    run.add_argument(
        "--check",
        action="store_true",
        help="check settings, LLM server, dataset, sandbox and GPUs, then exit (agent.doctor)",
    )
    run.add_argument(
        "--embedded-model",
        metavar="MODEL",
        help="the embedded LLM server's model when no server is configured: coder-7b, coder-1.5b, "
        "small, a GGUF path or OWNER/REPO:FILE.gguf (NASLOOP_EMBEDDED_MODEL; default: by hardware)",
    )
    grouped = [name for names in GROUPS.values() for name in names]
    ungrouped = set(Settings.model_fields) - set(grouped) - set(OLD_NAMES)
    if ungrouped or len(grouped) != len(set(grouped)):
        raise RuntimeError(f"settings without exactly one --help group: {sorted(ungrouped)}")
    old = {name: flag for flag, name in OLD_FLAGS.items()}
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add_setting(group, name)
            if name in old:
                help_text = f"old name of --no-{name}"
                group.add_argument(
                    old[name], dest=name, action="store_const", const=False, help=help_text
                )
    return parser


def _add_setting(group: argparse._ArgumentGroup, name: str) -> None:
    field = Settings.model_fields[name]
    flag = "--" + name.replace("_", "-")
    help_text = f"{field.description} (NASLOOP_{name.upper()}; default {field.default})"
    help_text = help_text.replace("%", "%%")  # argparse formats help strings
    if field.annotation is bool:
        # --flag sets True and --no-flag False. Not BooleanOptionalAction, so that an old flag
        # like --no-history can sit beside them as a plain alias.
        group.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
        group.add_argument(
            "--no-" + flag[2:], dest=name, action="store_const", const=False, help=f"{flag} off"
        )
    else:
        group.add_argument(flag, dest=name, metavar=_metavar(field.annotation), help=help_text)


def _metavar(annotation: Any) -> str:
    options = get_args(annotation)
    return (
        "|".join(map(str, options)) if options and all(isinstance(o, str) for o in options) else "V"
    )


def setting_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (flags left out are None)."""
    return {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        from agent.doctor import report, run_checks

        return report(run_checks(setting_flags(args), args.embedded_model))
    with contextlib.ExitStack() as stack:  # holds the embedded LLM server, if one is started
        return _main(args, stack)


def _main(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    try:
        flags = setting_flags(args)
        settings, run_id, resuming = resolve(flags, args.run_id)
        lock = RunLock(run_path(settings.runs_dir, run_id))
        stack.callback(lock.release)
        if resuming:
            lock.acquire()  # refuse a second process before it starts servers or checks anything
        settings, embedded = embedded_llm(
            flags, settings, run_id, resuming, stack, args.embedded_model
        )
        preflight_all(settings)
        if not resuming:
            lock.acquire()  # only now may a new run's directory exist
    except (*BAD_INPUT, RunBusy) as exc:
        return bad_input(exc)
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
        return EXIT_INFRASTRUCTURE
    except LLMUnavailable as exc:
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
