"""What a user takes away from a run: report, final test, export, limits, ablations.

One short real search (`python -m agent.run` through tests/helpers/probe_run.py, the real
Docker sandbox, mnist5k, an OpenAI-compatible HTTP server replaying recorded small-model replies)
with a parameter limit, then every artefact it leaves is checked the way a user would check it:
the report's numbers against the archive, the plots as images, the final test's separation from
the search (which data each sandbox job was handed), the exported network in a fresh interpreter,
and the settings to reproduce. A second test runs `python -m agent ablate` on a tiny budget.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import MNIST5K_REPLIES, FakeOpenAIServer, ScriptedResponder
from tests.fakes.small_model import MNIST5K_SIZES, SmallModel
from tests.helpers.agent_cli import fake_model_env
from tests.helpers.paths import ROOT
from tests.helpers.results_check import assert_summary_matches, query

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group(__name__)]
MAX_PARAMS = 50_000  # the recorded nets span 21k to 106k parameters: some fit, some do not
# replies 0-10: four nets over the limit (one a cache hit), three within, four other failures;
# the model told the limit leaves out a net it knows is too big on 60% of its asks
ITERATIONS = 11
HEED = 0.6
PUBLIC = ["meta.json", "train_images.pt", "train_labels.pt", "val_images.pt"]


@dataclass
class Run:
    run_dir: Path
    data: Path  # the prepared dataset's directory
    summary: dict[str, Any]  # what agent.run printed
    stderr: str
    events: list[dict[str, Any]]  # the probe's log
    requests: list[dict[str, Any]]  # what the LLM server received
    draws: list[tuple[str, str]]  # what the model did with each request (SmallModel.draws)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("results")
    log = tmp / "probe.jsonl"
    # the recorded replies, from a model that reads the limit in its prompt and mostly skips the
    # nets it knows are too big (a prompt-blind script would prove the filter only)
    model = SmallModel.from_file(
        MNIST5K_REPLIES, sizes=MNIST5K_SIZES, heed=HEED, copy=0.0, repeat=0.0, echo=0.0
    )
    with FakeOpenAIServer(model) as server:
        flags = ["--run-id", "r", "--iterations", str(ITERATIONS), "--max-params", str(MAX_PARAMS)]
        flags += ["--final-top-k", "2", "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "tests.helpers.probe_run", str(log), *flags],
            cwd=ROOT,
            env=fake_model_env(tmp, server.base_url),
            capture_output=True,
            text=True,
            timeout=900,
        )
        requests = server.requests
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    (data,) = (tmp / "data" / "prepared").glob("mnist5k-*")
    yield Run(
        tmp / "runs" / "r",
        data,
        json.loads(done.stdout),
        done.stderr,
        events,
        requests,
        model.draws,
    )


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_files_plots_and_every_number(run: Run) -> None:
    from PIL import Image

    report = run.run_dir / "report"
    assert run.summary["report_dir"] == str(report)
    for name in ("accuracy.png", "success_rate.png", "pareto.png"):
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] >= 350
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
            assert len(colours) > 50, f"{name} looks blank"
    summary = json.loads((report / "summary.json").read_text())
    assert_summary_matches(summary, run.run_dir)
    assert summary["iterations"] == ITERATIONS and summary["dataset"] == "mnist5k"

    text = (report / "report.md").read_text()
    for number in (
        f"{summary['ok']} ({summary['success_rate']:.1%})",
        f"{summary['best_val_accuracy']:.4f} (iteration {summary['best_iteration']})",
        f"{summary['tokens']['total']:,}",
    ):
        assert number in text, number
    assert summary["spearman_n"] == 3 and summary["spearman_rho"] is not None
    assert f"{summary['spearman_rho']:.3f} (n = {summary['spearman_n']})" in text
    for kind, count in summary["failures"].items():
        assert f"| {kind} | {count} |" in text
    for name in ("accuracy.png", "success_rate.png", "pareto.png"):
        assert f"({name})" in text

    # `python -m agent report` rebuilds the same report from the archive alone
    from agent.results.report import main as report_main

    shutil.rmtree(report)
    assert report_main(["r", "--runs-dir", str(run.run_dir.parent)]) == 0
    assert json.loads((report / "summary.json").read_text()) == summary


def test_the_final_test_is_apart_and_the_search_never_saw_the_test_split(run: Run) -> None:
    test_images = sha256(run.data / "private" / "test_images.pt")
    val_images = sha256(run.data / "public" / "val_images.pt")
    marks = [i for i, e in enumerate(run.events) if e["event"] == "final_test"]
    assert len(marks) == 1
    search, final = run.events[: marks[0]], run.events[marks[0] :]

    jobs = [e for e in search if e["event"] == "job"]
    search_jobs = [e for e in jobs if not e["self_test"]]
    assert len(jobs) - len(search_jobs) == 1  # the sandbox self-test, before the first candidate
    trained = query(
        run.run_dir,
        "SELECT COUNT(*) FROM candidates WHERE cached = 0"
        " AND kind NOT IN ('syntax', 'no_net', 'no_code')",
    )[0][0]
    assert len(search_jobs) == trained >= 5  # fewer than the replies: big nets left out, a repeat
    for job in jobs:  # the public half and nothing else: no labels, no test image
        assert sorted(job["files"]) == PUBLIC
        assert job["files"]["val_images.pt"] == val_images != test_images
        assert test_images not in job["files"].values()
    host_loads = [Path(e["path"]) for e in search if e["event"] == "load"]
    assert host_loads and all(p.name == "val_labels.pt" for p in host_loads)
    assert all(p.parent == run.data / "private" for p in host_loads)  # not the test view's

    final_jobs = [e for e in final if e["event"] == "job"]
    assert len(final_jobs) == 2  # top-2, once each
    for job in final_jobs:
        assert sorted(job["files"]) == PUBLIC
        assert job["files"]["val_images.pt"] == test_images  # test images enter here only

    rows = query(run.run_dir, "SELECT * FROM final_test ORDER BY rank")
    assert [r["rank"] for r in rows] == [1, 2]
    best = query(
        run.run_dir,
        "SELECT iteration, val_accuracy FROM candidates WHERE status = 'ok'"
        " ORDER BY val_accuracy DESC, iteration LIMIT 1",
    )[0]
    assert (rows[0]["iteration"], rows[0]["val_accuracy"]) == tuple(best)
    assert all(r["kind"] == "ok" and 0 < r["test_accuracy"] <= 1 for r in rows)
    assert all(r["n_test"] == 1000 and r["epochs"] == 1 for r in rows)
    assert [r["test_accuracy"] for r in run.summary["final_test"]] == [
        r["test_accuracy"] for r in rows
    ]
    # in the report the test numbers have their own section, after the search's
    text = (run.run_dir / "report" / "report.md").read_text()
    search_part, final_part = text.split("## Final test (held-out test split)")
    assert "test accuracy" not in search_part.lower()
    assert f"{rows[0]['test_accuracy']:.4f}" in final_part.split("## Pareto front")[0]


BEST_NET_CHECK = """
import json, sys
import torch
import torch.nn.functional as F
import best_net

test_x, test_y, train_x, train_y = (torch.load(p) for p in sys.argv[1:5])
c = best_net.NASLOOP_INPUT["input_shape"][0]
mean = torch.tensor(best_net.NASLOOP_INPUT["mean"]).view(1, c, 1, 1)
std = torch.tensor(best_net.NASLOOP_INPUT["std"]).view(1, c, 1, 1)
norm = lambda x: (x.float() / 255 - mean) / std
net = best_net.load_trained()  # the final test's weights
with torch.no_grad():
    test_accuracy = (net(norm(test_x)).argmax(1) == test_y).float().mean().item()
torch.manual_seed(0)
fresh = best_net.Net()
opt = torch.optim.SGD(fresh.parameters(), lr=0.02, momentum=0.9)
pick = torch.randperm(len(train_y))[:64]  # the split is stored in class order: mix it
x, y = norm(train_x[pick]), train_y[pick]
losses = []
for _ in range(15):
    loss = F.cross_entropy(fresh(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("agent", "sandbox", "tools", "graphs"))
print(json.dumps({"test_accuracy": test_accuracy, "losses": losses, "ours": ours}))
"""


def test_best_net_imports_alone_loads_its_weights_and_trains(run: Run, tmp_path: Path) -> None:
    export = run.run_dir / "export"
    assert run.summary["export_dir"] == str(export)
    alone = tmp_path / "elsewhere"  # away from the checkout, with only the two files
    alone.mkdir()
    for name in ("best_net.py", "best_net.pt"):
        shutil.copyfile(export / name, alone / name)
    source = (alone / "best_net.py").read_text()
    assert "import agent" not in source and "from sandbox" not in source
    private, public = run.data / "private", run.data / "public"
    args = [private / "test_images.pt", private / "test_labels.pt"]
    args += [public / "train_images.pt", public / "train_labels.pt"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", BEST_NET_CHECK, *map(str, args)],
        cwd=alone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ours"] == []  # nothing of nasloop was imported
    final = query(run.run_dir, "SELECT test_accuracy FROM final_test WHERE rank = 1")[0][0]
    assert abs(out["test_accuracy"] - final) <= 0.005  # the very weights the final test scored
    losses = out["losses"]
    assert losses[-1] < 0.5 * losses[0], losses  # it trains


def test_reproduce_env_gives_back_the_run_settings(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.settings import Settings

    export = run.run_dir / "export"
    stored = json.loads((run.run_dir / "settings.json").read_text())
    assert json.loads((export / "settings.json").read_text()) == stored
    shutil.copyfile(export / "reproduce.env", tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    again = Settings().model_dump(mode="json")
    assert {k: again[k] for k in stored} == stored
    readme = (export / "README.md").read_text()
    assert "python -m agent.run --run-id r-again" in readme and "reproduce.env" in readme


def test_a_parameter_limit_steers_the_search_and_the_front_is_drawn(run: Run) -> None:
    rows = query(run.run_dir, "SELECT * FROM candidates ORDER BY iteration")
    over = [r for r in rows if r["kind"] == "over_limit"]
    ok = [r for r in rows if r["status"] == "ok"]
    # Steered, not only filtered: the Generator read the limit in its prompt and left out nets it
    # knows are too big, so fewer nets over the limit were trained than within it. A model blind
    # to the prompt (HEED = 0) writes all four of its big nets, and the filter alone leaves
    # four refused against three trained.
    assert 1 <= len(over) < len(ok), [(r["iteration"], r["kind"], r["params"]) for r in rows]
    written = [what for model, what in run.draws if model == "fake-generator"]
    skipped = [int(n) for what in written for n in re.findall(r"\d+", what.partition("skip")[2])]
    assert skipped and all((MNIST5K_SIZES[n] or 0) > MAX_PARAMS for n in skipped), written
    for row in over:  # trained and scored, then refused with the numbers
        assert row["val_accuracy"] is not None and row["params"] > MAX_PARAMS
        assert f"{row['params']:,} params > {MAX_PARAMS:,} max" in row["message"]
    assert all(r["params"] <= MAX_PARAMS for r in ok)
    summary = json.loads((run.run_dir / "report" / "summary.json").read_text())
    assert summary["failures"]["over_limit"] == len(over)
    assert summary["limits"] == {"max_params": MAX_PARAMS}
    assert summary["best_val_accuracy"] == max(r["val_accuracy"] for r in ok)
    assert all(r["latency_ms"] and r["latency_ms"] > 0 for r in summary["top"])  # measured
    assert summary["pareto_params"] and summary["pareto_latency"]
    assert (run.run_dir / "report" / "pareto.png").stat().st_size > 10_000
    text = (run.run_dir / "report" / "report.md").read_text()
    assert "## Pareto front" in text and "max_params 50,000" in text
    # the Generator was told the limit every time, and the Improver saw the numbers
    prompts = [
        json.dumps(r["messages"]) for r in run.requests if r.get("model") == "fake-generator"
    ]
    assert len(prompts) == ITERATIONS
    assert all("at most 50,000 parameters" in p for p in prompts)
    improver = [json.dumps(r["messages"]) for r in run.requests if r["model"] == "fake-improver"]
    assert any("over_limit" in p and "params >" in p for p in improver)


def test_ablate_two_variants_two_seeds(tmp_path: Path, sandbox_image: str) -> None:
    name = "ab"
    args = ["--variants", "full,single_shot", "--seeds", "0,1", "--iterations", "3"]
    with FakeOpenAIServer(ScriptedResponder.from_file(MNIST5K_REPLIES)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "agent", "ablate", *args, "--name", name, "--json"],
            cwd=ROOT,
            env=fake_model_env(tmp_path, server.base_url),
            capture_output=True,
            text=True,
            timeout=900,
        )
        requests = server.requests
    assert done.returncode == 0, done.stderr
    out = tmp_path / "runs" / "ablations" / name
    assert json.loads(done.stdout)["dir"] == str(out)
    results = json.loads((out / "results.json").read_text())
    assert list(results["variants"]) == ["full", "single_shot"]
    for variant, runs in results["runs"].items():
        assert [r["run_id"] for r in runs] == [f"{name}-{variant}-s0", f"{name}-{variant}-s1"]
        for seed, numbers in enumerate(runs):
            run_dir = tmp_path / "runs" / numbers["run_id"]
            settings = json.loads((run_dir / "settings.json").read_text())
            assert settings["single_shot"] == (variant == "single_shot")
            assert (settings["run_seed"], settings["seed"], settings["iterations"]) == (
                seed,
                seed,
                3,
            )
            assert query(run_dir, "SELECT COUNT(*) FROM candidates")[0][0] == 3
            (report,) = [json.loads((run_dir / "report" / "summary.json").read_text())]
            assert numbers["curve"] == report["best_so_far"]
            if variant == "single_shot":  # no Improver at all
                assert query(run_dir, "SELECT SUM(improver_tokens) FROM candidates")[0][0] == 0
        # the variant's statistics are those of its runs, iteration by iteration (nothing
        # trained yet counts as 0)
        agg = results["variants"][variant]
        for i, point in enumerate(agg["curve"]):
            values = [r["curve"][i] or 0.0 for r in runs]
            assert point["mean"] == pytest.approx(sum(values) / len(values))
            assert (point["min"], point["max"]) == (min(values), max(values))
    table = (out / "comparison.md").read_text()
    assert "| full | 2 |" in table and "| single_shot | 2 |" in table
    from PIL import Image

    with Image.open(out / "curves.png") as image:
        assert image.format == "PNG" and image.size[0] >= 800
    # single-shot prompts hold the task alone: the same text at every call of a run
    generator = [json.dumps(r["messages"]) for r in requests if r["model"] == "fake-generator"]
    assert len(generator) == 12  # 4 runs x 3 candidates, seeds outermost: full, single_shot
    for single in (generator[3:6], generator[9:12]):
        assert len(set(single)) == 1 and "Last attempt" not in single[0]
    assert "Last attempt" in generator[2] or "Best network" in generator[2]  # full sees history
