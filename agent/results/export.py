"""Export a run's winner and the exact settings that produced it.

    python -m agent export RUN_ID [--runs-dir DIR]

Also done at the end of every `python -m agent.run`. Writes `<runs dir>/<run id>/export/`:

    best_net.py     the best candidate by validation accuracy as a module that imports on its own
                    (torch only): its provenance in a comment header, its code unchanged, then a
                    `load_trained()` helper
    best_net.pt     its state_dict, trained in the final test (only when the final test kept it)
    settings.json   every setting of the run (API keys are never written)
    reproduce.env   the same settings as NASLOOP_* lines: a `.env` file for `python -m agent.run`
    README.md       the numbers, the versions, and the commands to reproduce the run

The winner is chosen on validation accuracy, as the search chose; test numbers are shown beside it,
never used to choose it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.archive.candidates import RunArchive
from agent.archive.paths import (
    EXPORT_DIR,
    SETTINGS_FILE,
    existing_run_dir,
    load_final_test,
    saved_settings,
)
from agent.results.cli import run_command, run_parser

ROOT = Path(__file__).resolve().parents[2]  # the repository (for its git commit)

_LOADER = '''

# --- added by nasloop's export -------------------------------------------------------------------
NASLOOP_INPUT = {input!r}


def load_trained(path=None):
    """`Net` with the weights trained in the final test (best_net.pt beside this file).

    Inputs: float tensors of shape (B, *input_shape), scaled to 0..1 then normalised per channel
    with NASLOOP_INPUT's mean and std; outputs: (B, num_classes) logits.
    """
    import inspect
    import os

    import torch

    kwargs = {{}}
    if "num_classes" in inspect.signature(Net).parameters:
        kwargs["num_classes"] = NASLOOP_INPUT["num_classes"]
    net = Net(**kwargs)
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "best_net.pt")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()
'''


def env_line(name: str, value: Any) -> str:
    """One `.env` line; unset values are commented out, text with spaces or quotes is quoted."""
    key = f"NASLOOP_{name.upper()}"
    if value is None:
        return f"# {key}= (unset)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | dict):
        text = json.dumps(value)
    else:
        text = str(value)
    if text and not any(c in text for c in " \t\n\"'#$\\`"):
        return f"{key}={text}"
    if "'" not in text and "\n" not in text:
        return f"{key}='{text}'"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{escaped}"'


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _header(run_id: str, row: dict[str, Any], test: dict[str, Any] | None, shape: str) -> str:
    lines = [
        f"# Best network of nasloop run {run_id} (iteration {row['iteration']}).",
        f"# Validation accuracy in the search: {row['val_accuracy']:.4f}",
    ]
    if test and test.get("test_accuracy") is not None:
        lines.append(
            f"# Test accuracy in the final test ({test['epochs']} epoch(s), "
            f"{test['n_test']} held-out images): {test['test_accuracy']:.4f}"
        )
    if row.get("params") is not None:
        lines.append(f"# Parameters: {row['params']:,}; FLOPs per image: {row.get('flops') or '-'}")
    lines += [
        f"# Input {shape}, output (B, num_classes) logits. `load_trained()` at the end of this",
        "# file returns Net with the exported weights (best_net.pt), when the run kept them.",
        "",
    ]
    return "\n".join(lines) + "\n"


def export_run(run_dir: Path) -> Path | None:
    """Write `<run dir>/export/`; None (and nothing written) when no candidate trained."""
    rows = RunArchive(run_dir).rows()
    ok = [r for r in rows if r["status"] == "ok" and r["code_path"]]
    if not ok:
        return None
    best = max(ok, key=lambda r: (r["val_accuracy"], -r["iteration"]))
    settings = saved_settings(run_dir) or {}
    test = next((r for r in load_final_test(run_dir) if r["code_hash"] == best["code_hash"]), None)
    used = dataset_used(rows) or settings.get("dataset")
    if used and used != settings.get("dataset"):  # the default was unavailable: say what ran
        settings = {**settings, "dataset": used}
    meta = _dataset_meta(settings)
    out = run_dir / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    code = (run_dir / best["code_path"]).read_text(encoding="utf-8").rstrip("\n") + "\n"
    shape = f"(B, {', '.join(map(str, meta['input_shape']))})" if meta else "(B, C, H, W)"
    loader = _LOADER.format(input=meta or {})
    (out / "best_net.py").write_text(
        _header(run_dir.name, best, test, shape) + code + loader, encoding="utf-8"
    )
    weights = run_dir / test["weights_path"] if test and test.get("weights_path") else None
    if weights is not None and weights.is_file():
        shutil.copyfile(weights, out / "best_net.pt")
    else:
        (out / "best_net.pt").unlink(missing_ok=True)

    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    env = [
        f"# Settings of nasloop run {run_dir.name}: use as .env for `python -m agent.run`.",
        "# API keys are never written here: set NASLOOP_GENERATOR_API_KEY yourself if needed.",
        *(env_line(k, v) for k, v in settings.items()),
    ]
    (out / "reproduce.env").write_text("\n".join(env) + "\n")
    (out / "README.md").write_text(_readme(run_dir, best, test, settings), encoding="utf-8")
    return out


def dataset_used(rows: list[dict[str, Any]]) -> str | None:
    """The dataset the candidates were evaluated on, as their results name it."""
    for row in rows:
        name = json.loads(row["result"]).get("dataset") if row.get("result") else None
        if name:
            return str(name)
    return None


def _dataset_meta(settings: dict[str, Any]) -> dict[str, Any] | None:
    """Shape, classes and normalisation of the run's dataset, if it is prepared on this machine
    (nothing is downloaded for an export)."""
    from sandbox.data import prepare

    try:
        meta = prepare(
            str(settings["dataset"]),
            Path(str(settings["data_dir"])).expanduser(),
            download=False,
            val_size=settings.get("val_size"),
            seed=int(settings.get("split_seed") or 0),
        ).meta
    except Exception:  # not here, or not preparable offline: the export stands without it
        return None
    keys = ("input_shape", "num_classes", "mean", "std")
    return {k: meta[k] for k in keys}


def _readme(run_dir: Path, best: dict[str, Any], test: dict[str, Any] | None, s: Any) -> str:
    import torch

    commit = _git_commit()
    run_id, here = run_dir.name, run_dir / EXPORT_DIR
    test_line = (
        f"- test accuracy (final test, {test['epochs']} epoch(s)): {test['test_accuracy']:.4f}\n"
        if test and test.get("test_accuracy") is not None
        else "- test accuracy: no final test of this network\n"
    )
    return (
        f"# Export of run {run_id}\n\n"
        f"Best network by validation accuracy: iteration {best['iteration']}.\n\n"
        f"- validation accuracy (search): {best['val_accuracy']:.4f}\n"
        f"{test_line}"
        f"- parameters: {best['params'] if best['params'] is not None else '-'}\n\n"
        "## Use it\n\n"
        "```python\nfrom best_net import Net, load_trained\n"
        "net = load_trained()  # needs best_net.pt\n```\n\n"
        "Retrain and score it in the sandbox with the run's settings, from the nasloop "
        "checkout:\n\n"
        f"```sh\ncp {here}/reproduce.env .env\n"
        f"python -m tools.train_candidate {here}/best_net.py\n```\n\n"
        "## Reproduce the search\n\n"
        "From the nasloop checkout, with these settings as `.env` (the LLM servers named in it "
        "must answer; `reproduce.env` names the dataset the run actually trained on):\n\n"
        f"```sh\ncp {here}/reproduce.env .env\npython -m agent.run --run-id {run_id}-again\n```"
        "\n\n"
        "## Versions\n\n"
        f"- nasloop commit: {commit or 'unknown'}\n"
        f"- python {platform.python_version()}, torch {torch.__version__}\n"
        f"- dataset: {s.get('dataset')}, train_limit {s.get('train_limit')}, "
        f"epochs {s.get('epochs')}, seed {s.get('seed')}, run_seed {s.get('run_seed')}\n"
    )


def main(argv: list[str] | None = None) -> int:
    return run_command(run_parser("python -m agent export", __doc__), argv, _export)


def _export(args: argparse.Namespace) -> int:
    out = export_run(existing_run_dir(args.run_id, args.runs_dir, SETTINGS_FILE))
    print(f"export: {out}" if out else "nothing to export: no candidate trained")
    return 0 if out else 1


if __name__ == "__main__":
    sys.exit(main())
