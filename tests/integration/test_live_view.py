"""The live view of `python -m agent.run`, checked in a real terminal: a detached tmux session
(120x30) runs a parallel search against the scripted LLM server and the Docker sandbox, and the
test reads the screen with `tmux capture-pane` while it runs and after it ends.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.agent_cli import fake_model_env
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.docker
STATUS = re.compile(
    r"(\d+)/4 · best (\S+) · success (\d+)/(\d+) \(\S+\) · "
    r"(starting|generating|checking|training|advising|stopped)[^·]* · (\d+:\d\d) elapsed · "
    r"ETA (\S+)"
)


def capture(socket: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-S", "-100"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def test_live_view_in_a_real_terminal(tmp_path: Path, llm_url: str, sandbox_image: str) -> None:
    assert shutil.which("tmux"), "tmux is needed for this test: apt-get install tmux"
    env = fake_model_env(
        tmp_path,
        llm_url,
        NASLOOP_TRAIN_LIMIT="300",
    )
    command = [sys.executable, "-m", "agent.run", "--run-id", "live", "--iterations", "4"]
    script = tmp_path / "live.sh"
    script.write_text(
        f"cd {shlex.quote(str(ROOT))}\n{shlex.join([*command, '--parallel', '2'])}\n"
        "echo EXIT=$?\nsleep 600\n"
    )
    socket = f"nasloop-live-{os.getpid()}"  # our own tmux server: nobody else's sessions
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-x", "120", "-y", "30", f"sh {script}"],
        env=env,  # a fresh server: the session gets exactly this environment
        check=True,
    )
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            screens.append(capture(socket))
            if "EXIT=" in screens[-1]:
                break
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False)
    final = screens[-1]
    assert "EXIT=0" in final, final
    # the finished candidates scrolled above the status line, in order, each with its worker
    lines = re.findall(r"^\[(\d)/4\] w(\d) best ", final, re.MULTILINE)
    assert lines == [("1", "1"), ("2", "2"), ("3", "1"), ("4", "2")], final
    # the status line stays on screen at the end: everything done, the counts of the run
    status = STATUS.findall(final)
    assert status and status[-1][0] == "4" and status[-1][3] == "4", final
    assert status[-1][4] == "stopped" and status[-1][6] == "0:00"
    ok = len(re.findall(r"^\[\d/4\] w\d .*\| last ok ", final, re.MULTILINE))
    assert int(status[-1][2]) == ok
    assert "━" in final  # the progress bar
    # while it ran, the line named what the search was doing, with iteration and worker
    during = [m for screen in screens[:-1] for m in STATUS.finditer(screen)]
    stages = {m.group(5) for m in during}
    assert stages & {"generating", "training", "advising"}, screens[-3:]
    assert any(re.search(r"(generating|training) #\d w[12]", s) for s in screens), screens[-3:]
    assert "done: 4 candidates" in final
