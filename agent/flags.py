"""Every setting as a command-line flag, in the groups `--help` shows: `--history-k` is
NASLOOP_HISTORY_K, a boolean has `--flag` and `--no-flag`. Shared by the search's command and by
the commands that start searches of their own (ablations, the search-quality benchmark)."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from agent.settings import OLD_NAMES, Settings

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
        *("llm_calls", "concrete_advice"),
        *("reference", "single_shot", "run_seed", "constraints"),
        *("novelty", "auto_fix", "dead_layers"),  # the check step
        "prompt_style",  # the Generator's prompt
        "edit_mode",
        *("parent", "copy_heat", "fill_in"),  # against copying the network shown
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


def add_setting_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` with one flag per setting, in its group (a setting in no group is an error)."""
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


def parse_setting_flags(argv: list[str]) -> dict[str, Any]:
    """The settings a list of flags gives (argparse's usual exit on a bad flag)."""
    parser = add_setting_flags(argparse.ArgumentParser(prog="settings", add_help=False))
    return setting_flags(parser.parse_args(argv))
