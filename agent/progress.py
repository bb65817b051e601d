"""What `python -m agent.run` shows while it searches: a live status line on a terminal, plain
lines otherwise (CI, logs, a pipe).

Both read the graph's custom stream events (agent/archive/observe.py's stages, agent/nodes.py's
`candidate`) and show finished candidates in iteration order, each with its worker: in a parallel
round the branches finish in any order, so a candidate's line waits in `InOrder` until every
earlier one is out. A round's join (the `advising` stage) releases whatever is still held: a
candidate finished before a crash is not announced again by the resumed run.

The live line (rich) holds a progress bar, the best validation accuracy so far, the success
rate, the current stage (generating / checking / training / advising) with its iteration and
worker, the elapsed time and an ETA from this session's pace; finished candidates scroll above it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


class InOrder:
    """Holds candidate events until all earlier iterations are out."""

    def __init__(self, next_iteration: int) -> None:
        self.next = next_iteration
        self.held: dict[int, dict[str, Any]] = {}

    def push(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.held[event["iteration"]] = event
        ready = []
        while self.next in self.held:
            ready.append(self.held.pop(self.next))
            self.next += 1
        return ready

    def release_through(self, iteration: int) -> list[dict[str, Any]]:
        """Everything held up to `iteration` (an earlier one will not come), in order."""
        ready = [self.held.pop(i) for i in sorted(self.held) if i <= iteration]
        self.next = max(self.next, iteration + 1)
        return ready

    def release_all(self) -> list[dict[str, Any]]:
        return self.release_through(max(self.held, default=self.next - 1))


class Scoreboard:
    """The running numbers both views show, taken from the candidates in iteration order."""

    def __init__(self, iterations: int, start: dict[str, Any]) -> None:
        self.iterations = iterations
        self.done = int(start.get("iteration") or 0)
        self.ok = int(start.get("ok_count") or 0)
        best = start.get("best")
        self.best: float | None = best["result"]["val_accuracy"] if best else None
        self.first_done = self.done  # this session's pace counts only its own candidates
        self.started = time.monotonic()
        self.stage = "starting"
        self.stage_iteration: int | None = None
        self.stage_worker: int | None = None

    def take(self, event: dict[str, Any]) -> None:
        self.done = max(self.done, event["iteration"] + 1)
        if event["kind"] == "ok":
            self.ok += 1
            acc = event.get("val_accuracy")
            if acc is not None and (self.best is None or acc > self.best):
                self.best = acc

    def joined(self, event: dict[str, Any]) -> None:
        """A round is joined: the node's own counts win (they include candidates a crash hid)."""
        self.done = max(self.done, event["iteration"] + 1)
        self.ok = int(event.get("ok", self.ok))
        self.best = event.get("best_val_accuracy", self.best)

    def eta_seconds(self) -> float | None:
        made = self.done - self.first_done
        if made <= 0:
            return None
        return (time.monotonic() - self.started) / made * max(0, self.iterations - self.done)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def candidate_line(event: dict[str, Any], tally: Scoreboard) -> str:
    """One finished candidate: `[7/20] w2 best 0.9120 | success 5/7 (71%) | last ok 0.9001`."""
    acc = event.get("val_accuracy")
    trained = acc is not None and event["kind"] == "ok"  # over_limit has an accuracy, too
    outcome = f"ok {acc:.4f}" if trained else f"{event['kind']}: {event['message'][:60]}"
    best = f"{tally.best:.4f}" if tally.best is not None else "-"
    done = event["iteration"] + 1
    worker = f" w{event['worker']}" if event.get("worker") else ""
    rate = tally.ok / done
    return (
        f"[{done}/{tally.iterations}]{worker} best {best} | success {tally.ok}/{done} "
        f"({rate:.0%}) | last {outcome}"
    )


class ProgressView(Protocol):
    def event(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class _Ordered:
    """Feeds events through InOrder and the scoreboard; subclasses show lines and the stage."""

    def __init__(self, iterations: int, start: dict[str, Any]) -> None:
        self.tally = Scoreboard(iterations, start)
        self.order = InOrder(self.tally.done)

    def event(self, event: dict[str, Any]) -> None:
        if not isinstance(event, dict):
            return
        if event.get("event") == "candidate":
            self._show(self.order.push(event))
        elif event.get("event") == "stage":
            if event["stage"] == "advising":  # a round's join: all up to here are in
                self._show(self.order.release_through(event["iteration"]))
                self.tally.joined(event)
            self.tally.stage = event["stage"]
            self.tally.stage_iteration = event["iteration"]
            self.tally.stage_worker = event.get("worker")
            self._refresh()

    def _show(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.tally.take(event)
            self._line(candidate_line(event, self.tally))
        if events:
            self._refresh()

    def close(self) -> None:
        self._show(self.order.release_all())

    def _line(self, text: str) -> None:
        raise NotImplementedError

    def _refresh(self) -> None:
        pass


class PlainProgress(_Ordered):
    """One line per finished candidate, in iteration order: for logs and pipes."""

    def __init__(self, iterations: int, start: dict[str, Any], stream: TextIO) -> None:
        super().__init__(iterations, start)
        self.stream = stream

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class LiveProgress(_Ordered):
    """The live status line under the scrolling candidate lines (rich, on a terminal)."""

    def __init__(self, iterations: int, start: dict[str, Any], console: Console) -> None:
        super().__init__(iterations, start)
        self.console = console
        self.live = Live(
            get_renderable=self._render,
            console=console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def _render(self) -> Group:
        t = self.tally
        rate = f"{t.ok / t.done:.0%}" if t.done else "-"
        best = f"{t.best:.4f}" if t.best is not None else "-"
        where = ""
        if t.stage_iteration is not None:
            where = f" #{t.stage_iteration}" + (f" w{t.stage_worker}" if t.stage_worker else "")
        elapsed = time.monotonic() - t.started
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=24)
        grid.add_column()
        grid.add_row(
            ProgressBar(total=max(1, t.iterations), completed=t.done, width=24),
            Text(
                f"{t.done}/{t.iterations} · best {best} · success {t.ok}/{t.done} ({rate}) · "
                f"{t.stage}{where} · {_clock(elapsed)} elapsed · ETA {_clock(t.eta_seconds())}"
            ),
        )
        return Group(grid)

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _refresh(self) -> None:
        self.live.refresh()

    def close(self) -> None:
        super().close()
        self.tally.stage, self.tally.stage_iteration = "stopped", None  # done, or interrupted
        self.live.refresh()
        self.live.stop()


def progress_view(
    iterations: int, start: dict[str, Any], quiet: bool = False, stream: TextIO | None = None
) -> ProgressView:
    """The live view when `stream` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if quiet:
        return _Silent()
    if stream.isatty():
        return LiveProgress(iterations, start, Console(file=stream))
    return PlainProgress(iterations, start, stream)


class _Silent:
    def event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
