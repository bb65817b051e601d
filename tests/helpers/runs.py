"""A whole `agent.run` in a test: its checkpoint read back, and a kill at a random moment."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from agent.graph import build_graph


def checkpoint_state(run_dir: Path) -> dict[str, Any]:
    with SqliteSaver.from_conn_string(str(run_dir / "checkpoints.sqlite")) as saver:
        graph = build_graph(checkpointer=saver)
        snapshot = graph.get_state({"configurable": {"thread_id": run_dir.name}})
        return dict(snapshot.values)


def wait_and_kill(proc: subprocess.Popen[str], rng: random.Random) -> bool:
    """SIGKILL the run at a random moment after 0-2 finished candidates; False if it ended first.

    Counting progress lines rather than seconds keeps every kill inside the search (an LLM call,
    a training, an archive or checkpoint write) however fast the sandbox is, and the random delay
    after the last line decides which of those it interrupts.
    """
    progress = threading.Semaphore(0)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("["):
                progress.release()

    threading.Thread(target=read, daemon=True).start()
    for _ in range(rng.randint(0, 2)):
        while not progress.acquire(timeout=0.5):
            if proc.poll() is not None:
                return False
    time.sleep(rng.uniform(0.0, 1.5))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True
