"""Every LLM call archived, each candidate's lineage, `python -m agent show`, on the scripted graph.

The graph runs with tests/helpers/graph.py's scripted roles and evaluator (fifteen iterations,
every failure kind, a reply without code); what the archive holds is compared with what the
scripted chat models were actually sent and answered.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent.archive.calls import TEXT_LIMIT, CallLog, clip
from agent.archive.lineage import read_parents
from agent.llm.client import Reply
from agent.results import show
from agent.results.failures import failure_analysis, fault_line, longest_streak
from agent.results.lineage_plot import lineage_graph, plot_lineage
from agent.settings import Settings
from tests.helpers.graph import (
    ECHO,
    NO_IMPORT,
    SCRIPT,
    STUCK,
    CountingEvaluator,
    RecordingChat,
    generator_reply,
    run,
    run_to_end_state,
    scripted_roles,
    use_evaluator,
)


def test_every_call_archived_with_messages_reply_and_what_was_read(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    run(tmp_path, iterations=15)
    calls = CallLog(tmp_path / "t").calls()
    generator = [c for c in calls if c["role"] == "generator"]
    improver = [c for c in calls if c["role"] == "improver"]
    assert [(c["iteration"], c["attempt"]) for c in generator] == [(i, 0) for i in range(15)]
    # the Improver reads every result but the last (the budget ends the run there)
    assert [c["iteration"] for c in improver] == list(range(14))
    for i, call in enumerate(generator):
        sent = "\n".join(m["content"] for m in call["messages"])
        assert sent == roles["generator"].prompts[i]  # exactly what the model was sent
        assert [m["role"] for m in call["messages"]] == ["system", "human"]
        assert call["reply"] == generator_reply(i)
        if SCRIPT[i][0] == "no_code":
            assert call["extracted"] == {"none": "the reply contained no Python code block"}
        else:
            assert f"width = {i}" in call["extracted"]["code"]
    for i, call in enumerate(improver):
        assert "\n".join(m["content"] for m in call["messages"]) == roles["improver"].prompts[i]
        assert call["extracted"] == {"problem": f"problem-{i}", "suggestion": f"suggestion-{i}"}
        assert json.loads(call["reply"])["suggestion"] == f"suggestion-{i}"
    # nothing of it in the graph state: the checkpoint stays small (test_graph checks its size)


def test_lineage_follows_what_each_prompt_showed(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    run(tmp_path, iterations=15)
    parents = read_parents(tmp_path / "t")
    assert parents[0] == {"parent": None, "also_shown": None, "why": "root"}
    best: int | None = None
    for i in range(1, 15):
        kind, acc = SCRIPT[i - 1]
        if kind == "ok" and (best is None or acc > SCRIPT[best][1]):  # type: ignore[operator]
            best = i - 1
        if kind != "ok":  # the last one failed: this candidate was asked to fix it
            assert parents[i] == {"parent": i - 1, "also_shown": best, "why": "fix"}, i
        else:
            also = None if best == i - 1 else i - 1
            assert parents[i] == {"parent": best, "also_shown": also, "why": "best"}, i


def test_lineage_graph_and_failure_numbers_from_the_archive(
    tmp_path: Path, roles: dict[str, RecordingChat]
) -> None:
    run(tmp_path, iterations=15)
    run_dir = tmp_path / "t"
    rows = nodes_rows(tmp_path)
    parents = read_parents(run_dir)
    graph = lineage_graph(rows, parents)
    assert [n["iteration"] for n in graph["nodes"]] == [r["iteration"] for r in rows]
    assert graph["edges"] == sorted(
        (p["parent"], i) for i, p in parents.items() if p["parent"] is not None
    )
    assert graph["light_edges"] == sorted(
        (p["also_shown"], i) for i, p in parents.items() if p["also_shown"] is not None
    )
    # the best (0.55 at 9) and its ancestors along first edges, from the root
    path = [9]
    while parents[path[0]]["parent"] is not None:
        path.insert(0, parents[path[0]]["parent"])  # type: ignore[arg-type]
    assert graph["best_path"] == path and path[0] == 0
    plot_lineage(graph, tmp_path / "lineage.png")
    assert (tmp_path / "lineage.png").stat().st_size > 5000

    analysis = failure_analysis(rows, parents)
    counts = Counter(r["kind"] for r in rows if r["status"] != "ok")
    assert {k: v["count"] for k, v in analysis["kinds"].items()} == counts
    # fixed later: some descendant along first edges trained
    children: dict[int, list[int]] = {}
    for i, p in parents.items():
        if p["parent"] is not None:
            children.setdefault(p["parent"], []).append(i)

    def trained_below(i: int) -> bool:
        return any(SCRIPT[c][0] == "ok" or trained_below(c) for c in children.get(i, []))

    for kind, entry in analysis["kinds"].items():
        fixed = [i for i, (k, _) in enumerate(SCRIPT) if k == kind and trained_below(i)]
        assert entry["fixed"] == len(fixed), kind
        assert entry["example"]["message"] == f"{kind} failure" or kind == "no_code"


def nodes_rows(tmp_path: Path) -> list[dict[str, object]]:
    import agent.nodes as nodes

    return nodes.run_archive(Settings(runs_dir=tmp_path), "t").rows()


def test_fault_line_and_streaks() -> None:
    code = "import torch\nclass Net:\n    def forward(self, x):\n        return x.view(3)\n"
    tb = 'Traceback:\n  File "candidate.py", line 3, in forward\n  File "candidate.py", line 4\n'
    assert fault_line(tb, code) == (4, "return x.view(3)")
    assert fault_line("no lines here", code) is None
    # a traceback cut before the candidate's frame: the shape trace names the failed module
    code = "class Net:\n    def forward(self, x):\n        x = self.body(x)\n"
    code += "        return self.fc1(x)\n"
    trace: list[dict[str, Any]] = [
        {"module": "body", "out": [2, 8]},
        {"module": "fc1", "out": None, "failed": True},
    ]
    assert fault_line("in torch/nn/modules/linear.py", code, trace) == (4, "return self.fc1(x)")
    rows = [
        {"iteration": i, "status": s, "kind": k, "message": m}
        for i, (s, k, m) in enumerate(
            [
                ("error", "shape", "a"),
                ("error", "shape", "b"),
                ("error", "shape", "b"),
                ("error", "shape", "b"),
                ("ok", "ok", ""),
                ("error", "shape", "b"),
            ]
        )
    ]
    assert longest_streak(rows) == {
        "length": 3,
        "kind": "shape",
        "message": "b",
        "first": 1,
        "last": 3,
    }


def test_texts_are_bounded_and_compressed(tmp_path: Path) -> None:
    log = CallLog(tmp_path)
    huge = "x = 1  # a chatty model\n" * 20_000  # ~480 KB
    reply = Reply(text=huge, tokens=9, model="m-1", finish_reason="length")
    messages = [SystemMessage("sys"), HumanMessage(huge)]
    for _ in range(2):  # a node re-run after a crash: the same call again, still one row
        log.record(
            iteration=3,
            attempt=0,
            role="generator",
            messages=messages,
            reply=reply,
            seconds=1.5,
            extracted={"code": huge},
        )
    (call,) = log.calls()
    assert call["model"] == "m-1" and call["tokens"] == 9 and call["finish_reason"] == "length"
    for text in (call["reply"], call["messages"][1]["content"], call["extracted"]["code"]):
        assert len(text.encode()) <= TEXT_LIMIT and text.endswith("more bytes]")
        assert text.startswith(huge[:1000])
    with sqlite3.connect(tmp_path / "archive.sqlite") as db:
        blob = db.execute("SELECT reply FROM calls").fetchone()[0]
    assert len(blob) < TEXT_LIMIT / 20  # stored compressed
    stored = json.loads(zlib.decompress(blob))  # the row holds the reply as read back: clipped
    assert stored == call["reply"] == clip(huge) and len(stored) < len(huge)
    assert clip("short") == "short"


def test_show_tells_a_story_a_table_and_refuses_unknowns(
    tmp_path: Path, roles: dict[str, RecordingChat], capsys: pytest.CaptureFixture[str]
) -> None:
    run(tmp_path, iterations=6)
    base = ["--runs-dir", str(tmp_path)]
    assert show.main(["t", "2", *base]) == 0
    text = capsys.readouterr().out
    assert "iteration 2 · ok" in text and "derived from: iteration 1 (fix)" in text
    assert generator_reply(2) in text  # the raw reply
    assert roles["generator"].prompts[2].splitlines()[-1] in text  # the prompt
    assert "suggestion-2" in text and "suggestion-1" in text  # advice made, triple closed
    assert show.main(["t", "2", "--json", *base]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["role"] for c in data["calls"]] == ["generator", "improver"]
    assert data["calls"][0]["reply"] == generator_reply(2)
    assert data["lineage"]["parent"] == 1 and data["advice"]["suggestion"] == "suggestion-2"
    assert show.main(["t", *base]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 7 and table[2].split()[:2] == ["1", "shape"]
    assert show.main(["t", "--json", *base]) == 0
    assert len(json.loads(capsys.readouterr().out)["candidates"]) == 6
    for argv in (["t", "9", *base], ["nope", *base]):
        assert show.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("nasloop: error: ") and "\n" not in err


def test_re_asks_and_fixes_are_archived_as_the_iterations_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Generator stuck on one module (re-asks), then a module without its import (a
    mechanical fix): each ask is a call of its own attempt, each fix an attempt with its diff,
    and `python -m agent show` tells them in order."""
    use_evaluator(monkeypatch, CountingEvaluator())
    script = [STUCK] * 4 + [NO_IMPORT]  # 1 trained, 3 asks repeating it, 1 to fix
    chats = scripted_roles(monkeypatch, script, [ECHO])
    run_to_end_state(tmp_path, iterations=3)
    run_dir = tmp_path / "t"
    calls = [c for c in CallLog(run_dir).calls() if c["role"] == "generator"]
    attempts = show.attempt_rows(run_dir)
    # iteration 0 trains STUCK; iteration 1 asks three times (two re-asks), all STUCK: duplicate
    assert [(c["iteration"], c["attempt"]) for c in calls] == [
        (0, 0),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
    ]
    assert [
        (a["iteration"], a["attempt"], a["source"]) for a in attempts if a["iteration"] == 1
    ] == [
        (1, 0, "generator"),
        (1, 1, "reask"),
        (1, 2, "reask"),
    ]
    prompts = chats["generator"].prompts
    for n, call in enumerate(calls):
        assert "\n".join(m["content"] for m in call["messages"]) == prompts[n]
    assert "identical" in calls[2]["messages"][-1]["content"].lower()  # the re-ask's note
    # iteration 2: the module without its import, fixed on the host: an attempt with a diff
    fixed = [a for a in attempts if a["iteration"] == 2]
    assert [a["source"] for a in fixed][:2] == ["generator", "fix:imports"], fixed
    assert (
        "+import torch.nn as nn" in fixed[1]["diff"] or "+from torch import nn" in fixed[1]["diff"]
    )
    story = show.story_text(show.story(run_dir, 2))
    assert "## Attempt 1:" in story and fixed[1]["diff"] in story
    story = show.story_text(show.story(run_dir, 1))
    assert story.count("## Generator call (attempt") == 3


def test_caught_within_counts_failed_attempts_before_each_iterations_last() -> None:
    from agent.results.failures import caught_within

    rows = [{"iteration": 0, "status": "ok"}, {"iteration": 1, "status": "error"}]
    attempts = [
        {"iteration": 0, "attempt": 0, "kind": "import"},  # fixed: the iteration trained
        {"iteration": 0, "attempt": 1, "kind": "ok"},
        {"iteration": 1, "attempt": 0, "kind": "duplicate"},  # re-asked, still failed
        {"iteration": 1, "attempt": 1, "kind": "shape"},  # the iteration's own result
    ]
    assert caught_within(rows, attempts) == {
        "duplicate": {"count": 1, "fixed": 0},
        "import": {"count": 1, "fixed": 1},
    }
