"""The report's numbers, recomputed independently from a synthetic archive, and its files.

The archive is written through RunArchive as the graph writes it (successes, every failure kind,
an over-limit net, a cache hit, ties in accuracy); tests/helpers/results_check.py recomputes each
number with its own SQL and its own rank code, and scipy checks the Spearman implementation when
it is installed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agent.archive.candidates import RunArchive
from agent.results.numbers import average_ranks, pareto_front, spearman, summarise
from agent.results.report import write_report
from tests.helpers.archive import write_archive
from tests.helpers.results_check import assert_summary_matches, count_ranks, dominated, rho


def test_ranks_and_spearman_agree_with_independent_code() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(3, 25)
        xs = [float(rng.randint(0, 6)) for _ in range(n)]  # many ties
        ys = [rng.choice([0.1, 0.2, 0.25, 0.3]) for _ in range(n)]
        assert average_ranks(xs) == pytest.approx(count_ranks(xs))
        ours, theirs = spearman(xs, ys), rho(xs, ys)
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert ours == pytest.approx(theirs, abs=1e-12)
    assert spearman([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert spearman([0, 1, 2], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert spearman([0, 1], [0.1, 0.2]) is None  # too few points
    assert spearman([0, 1, 2], [0.5, 0.5, 0.5]) is None  # no variation


def test_spearman_matches_scipy() -> None:
    from scipy import stats

    rng = random.Random(3)
    for _ in range(50):
        n = rng.randint(3, 30)
        xs = list(range(n))
        ys = [round(rng.random(), 1) for _ in range(n)]
        expected = stats.spearmanr(xs, ys).statistic
        ours = spearman([float(x) for x in xs], ys)
        if ours is None:
            assert expected != expected or len(set(ys)) == 1  # nan: constant input
        else:
            assert ours == pytest.approx(float(expected), abs=1e-12)


def test_pareto_front_is_exactly_the_undominated_points() -> None:
    rng = random.Random(11)
    for _ in range(100):
        points = [
            {
                "iteration": i,
                "val_accuracy": rng.choice([0.1, 0.2, 0.3, 0.4]),
                "params": rng.choice([10, 20, 30, 40, 50]),
            }
            for i in range(rng.randint(1, 15))
        ]
        front = pareto_front(points, "params")
        expected = [p for p in points if not dominated(p, points, "params")]
        assert sorted(p["iteration"] for p in front) == sorted(p["iteration"] for p in expected)


def test_every_summary_number_is_recomputed_from_the_archive(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_archive(run_dir)
    out = write_report(run_dir)
    summary = json.loads((out / "summary.json").read_text())
    assert_summary_matches(summary, run_dir)
    # and by hand, for the story of SCRIPT
    assert (summary["iterations"], summary["ok"], summary["cached"]) == (12, 6, 1)
    assert summary["success_rate"] == pytest.approx(0.5)
    assert summary["failures"] == {
        "no_code": 1,
        "oom": 1,
        "over_limit": 1,
        "shape": 1,
        "syntax": 1,
        "timeout": 1,
    }
    assert (summary["first_val_accuracy"], summary["best_val_accuracy"]) == (0.31, 0.52)
    assert summary["best_iteration"] == 9
    assert [c["iteration"] for c in summary["top"]] == [9, 2, 5, 10, 0]  # iteration 6: same code
    assert [p["iteration"] for p in summary["pareto_params"]] == [5, 9, 4]
    assert summary["limits"] == {"max_params": 200_000}
    assert summary["variant"] == ["no_history"]
    assert summary["best_so_far"][:3] == [0.31, 0.31, 0.45]
    assert summary["tokens"] == {
        "generator": sum(100 + i for i in range(12)),
        "improver": sum(40 + i for i in range(12)),
        "total": sum(140 + 2 * i for i in range(12)),
    }
    assert summary["seconds"]["evaluation"] == pytest.approx(sum(2.0 + i for i in range(12)) - 8)


def test_the_markdown_shows_the_numbers_and_keeps_the_test_apart(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_archive(run_dir)
    rows = [  # a final test as `python -m agent final_test` stores it
        {
            "rank": 1,
            "iteration": 9,
            "code_hash": "hash-h",
            "val_accuracy": 0.52,
            "test_accuracy": 0.4973,
            "epochs": 2,
            "n_test": 1000,
            "status": "ok",
            "kind": "ok",
            "params": 150_000,
            "train_seconds": 4.0,
        }
    ]
    summary = summarise(RunArchive(run_dir).rows(), rows, {"dataset": "mnist5k"}, "run")
    from agent.results.report import markdown

    text = markdown(summary)
    search, final = text.split("## Final test (held-out test split)")
    assert "6 (50.0%)" in search and "0.3100 → 0.5200 (iteration 9)" in search
    assert f"{summary['spearman_rho']:.3f} (n = 6)" in search
    assert "| over_limit | 1 |" in search and "| shape | 1 |" in search
    assert "0.4973" not in search and "test" not in search.lower()
    assert "| 1 | 9 | 0.5200 | 0.4973 |" in final and "2 epoch(s)" in final


def test_plots_are_pngs_with_content(tmp_path: Path) -> None:
    from PIL import Image

    run_dir = tmp_path / "run"
    write_archive(run_dir)
    out = write_report(run_dir)
    for name in ("accuracy.png", "success_rate.png", "pareto.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] >= 800
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_a_run_where_nothing_trained_still_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_archive(run_dir, [("shape", None, None, None, "x"), ("no_code", None, None, None, "")])
    out = write_report(run_dir)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == 0 and summary["best_val_accuracy"] is None
    assert summary["spearman_rho"] is None and summary["pareto_params"] == []
    assert "No candidate trained." in (out / "report.md").read_text()


def test_report_cli_refuses_an_unknown_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.results.report import main

    assert main(["nope", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no run in" in err and "--runs-dir" in err
