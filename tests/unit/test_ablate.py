"""agent.ablate's pieces: each variant's command line, and the statistics over seeds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from agent.archive.candidates import RunArchive
from agent.results.ablate import aggregate, collect, run_argv, run_id_for, stats, write_outputs
from agent.run import build_parser
from sandbox.result import new_result


@pytest.mark.parametrize("variant", ["full", "no_history", "no_improver", "single_shot"])
def test_each_variant_sets_every_switch(variant: str) -> None:
    argv = run_argv("x", variant, 2, 7, ["--train-limit", "500"])
    args = build_parser().parse_args(argv)
    off = {"no_history": "memory", "no_improver": "improver", "no_reference": "reference"}
    switches = {"memory": True, "improver": True, "reference": True, "single_shot": False}
    expected = {s: full != (off.get(variant, variant) == s) for s, full in switches.items()}
    assert {s: getattr(args, s) for s in switches} == expected
    assert (args.run_seed, args.seed, args.iterations, args.train_limit) == ("2", "2", "7", "500")
    assert args.final_top_k == "0"  # no final test unless asked
    asked = build_parser().parse_args(run_argv("x", variant, 0, 1, ["--final-top-k", "2"]))
    assert asked.final_top_k == "2"


def test_stats_are_mean_sample_std_min_max() -> None:
    values = [0.2, 0.5, 0.3]
    s = stats([*values, None])
    assert s["n"] == 3 and s["mean"] == pytest.approx(statistics.mean(values))
    assert s["std"] == pytest.approx(statistics.stdev(values))
    assert (s["min"], s["max"]) == (0.2, 0.5)
    assert stats([0.4])["std"] == 0.0 and stats([None])["mean"] is None


def test_curves_count_nothing_found_as_zero_and_never_fall() -> None:
    runs = [
        {"curve": [0.9, 0.9, 0.9], "best_val_accuracy": 0.9, "success_rate": 1.0},
        {"curve": [None, None, 0.1], "best_val_accuracy": 0.1, "success_rate": 1 / 3},
    ]
    for r in runs:
        r |= {"first_success": 0, "tokens": 10, "test_accuracy": None}
    agg = aggregate(runs, 3)
    means = [p["mean"] for p in agg["curve"]]
    assert means == pytest.approx([0.45, 0.45, 0.5])
    assert agg["best_val_accuracy"]["mean"] == pytest.approx(0.5)
    assert agg["test_accuracy"]["mean"] is None


def fake_run(run_dir: Path, accuracies: list[float | None]) -> None:
    archive = RunArchive(run_dir)
    for i, acc in enumerate(accuracies):
        kind = "ok" if acc is not None else "shape"
        archive.record_candidate(
            i, "x", dict(new_result(kind, "m", f"h{i}", val_accuracy=acc)), gen_tokens=5
        )


def test_collect_writes_the_table_plot_and_results(tmp_path: Path) -> None:
    curves: dict[tuple[str, int], list[float | None]] = {
        ("full", 0): [0.3, None, 0.5],
        ("full", 1): [None, 0.4, 0.45],
        ("single_shot", 0): [0.2, 0.2, None],
        ("single_shot", 1): [None, None, None],
    }
    for (variant, seed), accs in curves.items():
        fake_run(tmp_path / run_id_for("ab", variant, seed), accs)
    results = collect(tmp_path, "ab", ["full", "single_shot"], [0, 1], 3)
    full = results["variants"]["full"]
    assert [r["curve"] for r in results["runs"]["full"]] == [[0.3, 0.3, 0.5], [None, 0.4, 0.45]]
    assert full["best_val_accuracy"]["mean"] == pytest.approx(0.475)
    assert full["success_rate"]["mean"] == pytest.approx(2 / 3)
    assert results["variants"]["single_shot"]["curve"][2]["mean"] == pytest.approx(0.1)
    out = tmp_path / "ablations" / "ab"
    write_outputs(results, out)
    table = (out / "comparison.md").read_text()
    assert "| full | 2 | 0.4750 ± 0.0354 | 0.4500 to 0.5000 |" in table
    assert "| single_shot | 2 | 0.1000 ± 0.1414 | 0.0000 to 0.2000 |" in table
    assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1]
    assert (out / "curves.png").stat().st_size > 10_000


def test_bad_variants_and_seeds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.results.ablate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--variants", "full,no_such_variant", "--iterations", "2"])
    assert exit_info.value.code == 2
    assert "no_such_variant" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--seeds", "a,b", "--iterations", "2"])
