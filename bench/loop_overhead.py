"""The search loop's own cost per iteration: graph, prompts, checkpoint and archive.

    python -m bench.loop_overhead [--iterations 200] [--json PATH]

The graph runs exactly as `python -m agent.run` runs it (SQLite checkpointer written before every
step, durability "sync", custom stream events, the run archive with one code file and one row
per candidate), with two stand-ins: LLM roles that answer instantly from a script and an
evaluator that returns a ready result. Their own time is measured around each call and taken
off, so `net` is what the loop adds to an iteration on top of the LLM and training:
    net per iteration = (wall - time inside the stand-ins) / iterations
ratio = net / BUDGET_MS (the target: at most 50 ms per iteration, i.e. ratio <= 1).

Measured on 2026-11-30 (2-core CPU): 200 iterations, net 10.0 ms per iteration (median 9.5,
p95 14.3), ratio 0.20.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

import agent.nodes as nodes
from agent.graph import build_graph
from agent.settings import Settings
from sandbox.result import new_result

BUDGET_MS = 50.0
REFERENCE_NET = (Path(__file__).resolve().parents[1] / "tools" / "reference_net.py").read_text()


class Stopwatch:
    """Total seconds spent inside the stand-ins (which a real run spends in the LLM and sandbox)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, call: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        return wrapper


class InstantTool:
    """Stands for train_candidate: a result of realistic shape, varying so the best moves."""

    def __init__(self, evaluator: Any) -> None:
        self.count = 0

    def invoke(self, args: dict[str, str]) -> dict[str, Any]:
        self.count += 1
        if self.count % 4 == 0:
            return dict(new_result("shape", "Net output has shape (2, 5), expected (2, 10)", "h"))
        accuracy = 0.5 + 0.4 * ((self.count * 37) % 100) / 100
        return dict(
            new_result(
                "ok",
                f"trained; validation accuracy {accuracy:.4f}",
                f"h{self.count}",
                val_accuracy=accuracy,
                params=100_000,
                flops=40_000_000,
                train_seconds=20.0,
                wall_seconds=21.0,
            )
        )


class FakeDataset:
    name = "synthetic-cifar"
    input_shape = (3, 32, 32)
    num_classes = 10
    n_train = 45_000


class FakeEvaluator:
    dataset = FakeDataset()


def install_stand_ins(iterations: int, watch: Stopwatch) -> None:
    code_reply = f"Here is the network.\n```python\n{REFERENCE_NET}\n```\n"
    advice = json.dumps({"problem": "underfits in one epoch", "suggestion": "widen block two"})
    chats = {
        "generator": FakeListChatModel(responses=[code_reply] * (iterations + 1)),
        "improver": FakeListChatModel(responses=[advice] * (iterations + 1)),
    }
    for chat in chats.values():
        object.__setattr__(chat, "invoke", watch.timed(chat.invoke))
    tool = InstantTool(None)
    tool.invoke = watch.timed(tool.invoke)  # type: ignore[method-assign]
    # The seams the graph tests use too: the nodes look these up at call time.
    setattr(nodes, "chat_for", lambda role, settings: chats[role])  # noqa: B010
    data = FakeEvaluator().dataset
    task: dict[str, Any] = {"dataset": data.name, "input_shape": list(data.input_shape)}
    task.update(num_classes=data.num_classes, n_train=data.n_train)
    setattr(nodes, "task_for", lambda settings: task)  # noqa: B010
    setattr(nodes, "train_candidate_for", lambda settings: tool)  # noqa: B010


def measure(iterations: int) -> dict[str, Any]:
    watch = Stopwatch()
    install_stand_ins(iterations, watch)
    per_iteration: list[float] = []
    with tempfile.TemporaryDirectory(prefix="loop_overhead.") as tmp:
        settings = Settings(runs_dir=Path(tmp), iterations=iterations)
        config = RunnableConfig(
            configurable={"thread_id": "bench"}, recursion_limit=4 * iterations + 20
        )
        with SqliteSaver.from_conn_string(str(Path(tmp) / "checkpoints.sqlite")) as saver:
            graph = build_graph(checkpointer=saver)
            started = last = time.perf_counter()
            inside_before = 0.0
            for event in graph.stream(
                {"run_id": "bench"},
                config,
                context=settings,
                stream_mode="custom",
                durability="sync",
            ):
                if isinstance(event, dict) and event.get("event") == "candidate":
                    now = time.perf_counter()
                    per_iteration.append((now - last) - (watch.seconds - inside_before))
                    last, inside_before = now, watch.seconds
            wall = time.perf_counter() - started
            final = graph.get_state(config).values
        archived = len(nodes.run_archive(settings, "bench").rows())
    if final.get("iteration") != iterations or archived != iterations:
        raise RuntimeError(f"ran {final.get('iteration')} iterations, archived {archived}")
    net_ms = 1000 * (wall - watch.seconds) / iterations
    return {
        "iterations": iterations,
        "wall_s": wall,
        "stand_ins_s": watch.seconds,
        "net_ms_per_iteration": net_ms,
        "median_ms": 1000 * statistics.median(per_iteration),
        "p95_ms": 1000 * sorted(per_iteration)[int(0.95 * (len(per_iteration) - 1))],
        "first_ms": 1000 * per_iteration[0],  # includes setup and the first imports
        "budget_ms": BUDGET_MS,
        "ratio": net_ms / BUDGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_overhead", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.iterations)
    print(
        f"{result['iterations']} iterations in {result['wall_s']:.2f} s, of which"
        f" {result['stand_ins_s']:.2f} s inside the LLM/evaluator stand-ins"
    )
    print(
        f"loop overhead per iteration: net {result['net_ms_per_iteration']:.1f} ms (median"
        f" {result['median_ms']:.1f}, p95 {result['p95_ms']:.1f}, first {result['first_ms']:.1f})"
        f" = {result['ratio']:.2f} of the {BUDGET_MS:g} ms budget"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "loop_overhead", **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
