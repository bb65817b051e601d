"""bench/search_quality.py end to end as CI's smoke test: the real llama-server with the packaged
SmolLM2-135M, the Docker sandbox, the three variants the issue compares (full, single_shot,
best_of_k) at a tiny budget of LLM calls, one seed. Every other variant runs to its budget on
scripted roles in tests/unit/test_search_quality.py (13 variants here took 4 minutes of CI).

SmolLM2 writes code that mostly fails: a variant training nothing is a figure, not a failure. What
must hold is that every variant spent its budget of calls and that the JSON has every field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.archive.candidates import RunArchive
from agent.llm.build import ensure_llama_server
from agent.llm.models import packaged_model
from agent.results.quality import NUMBERS
from tests.helpers.agent_cli import agent_env
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.docker

CALLS = 3  # per run: the Generator, the Improver (in full), the Generator again
VARIANTS = ("full", "single_shot", "best_of_k")


def test_every_variant_spends_its_calls_on_smollm2(tmp_path: Path, sandbox_image: str) -> None:
    binary = ensure_llama_server()
    env = agent_env(
        tmp_path,
        NASLOOP_GENERATOR_MAX_TOKENS="300",
        NASLOOP_IMPROVER_MAX_TOKENS="96",
        NASLOOP_LLM_TIMEOUT_S="120",
        NASLOOP_LLAMA_SERVER=str(binary),
    )
    # agent_env's paper protocol is for scripted replies; each variant sets its own switches
    for key in ("NASLOOP_NOVELTY", "NASLOOP_AUTO_FIX", "NASLOOP_PROMPT_STYLE"):
        env.pop(key)
    out = tmp_path / "quality.json"
    command = [sys.executable, "-m", "bench.search_quality", "--model", str(packaged_model())]
    command += ["--threads", "1", "--seeds", "0", "--llm-calls", str(CALLS), "--name", "smoke"]
    command += ["--variants", ",".join(VARIANTS)]
    command += ["--json", str(out), "--plot", str(tmp_path / "quality.png")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert list(results["variants"]) == list(VARIANTS)
    for variant, agg in results["variants"].items():
        assert agg["runs"] == 1
        assert all(key in agg and "mean" in agg[key] for key in NUMBERS), variant
        (run,) = results["runs"][variant]
        assert all(key in run for key in NUMBERS), variant
        assert run["llm_calls"] >= CALLS, (variant, run)
        # the calls the benchmark counted are the archive's: one Generator call per iteration
        rows = RunArchive(tmp_path / "runs" / run["run_id"]).rows()
        assert run["iterations"] == len(rows) >= 1
        assert all(r["gen_tokens"] > 0 for r in rows), (variant, rows)
    runs = {variant: results["runs"][variant][0] for variant in results["runs"]}
    # the Improver's call is counted in the budget: full spends one of its two on it
    assert runs["full"]["improver_calls"] >= 1 and runs["single_shot"]["improver_calls"] == 0
    assert set(results["ratios_full_over_single_shot"]) == set(NUMBERS)
    assert results["default"] in VARIANTS
    assert f"The rule picks: **{results['default']}**" in done.stdout
    assert (tmp_path / "quality.png").stat().st_size > 5_000
