"""What travels into the sandbox: the runner, the warm worker's in-container side, its clearing, and
the verifier. Standard library and torch only; nothing here imports the rest of nasloop, and the
host finds these files by path, never imports them to run a candidate."""

from pathlib import Path

# The files the host copies or mounts into a sandbox, by path (never imported by the host to run)
HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
WORKER = HERE / "worker.py"
CLEARING = HERE / "clearing.py"
VERIFIER = HERE / "verifier.py"
