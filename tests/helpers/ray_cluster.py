"""A real, lean Ray cluster on this machine for the tests: a head and one worker node.

Both nodes get one CPU, a small object store and no dashboard; the head runs Ray's client
server, so `python -m agent.run --executor ray://127.0.0.1:PORT` connects as it would to a remote
cluster. Every port is chosen free, and the session lives in a temp dir of its own. Ray's token
authentication is on, with a random token of the cluster's own that its clients get through the
environment (`client_env()`), so nothing depends on (or is written to) `~/.ray/auth_token`.

Teardown stops exactly the processes of this cluster, found by pid (their command lines name our
session dir or GCS port; Ray's workers and agents are their children), never by name:
`ray stop --force` would stop every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
OBJECT_STORE_BYTES = 80 * 2**20  # Ray's minimum is 75 MiB; our tasks pass only small strings


def free_ports(n: int, taken: tuple[int, ...] = ()) -> list[int]:
    """n free ports, none of them in `taken` (ports chosen earlier and not yet bound: the kernel
    may hand one out again once its probe socket is closed, and Ray refuses a port used twice)."""
    sockets: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < n:
            s = socket.socket()
            sockets.append(s)  # held open until the end, so that no port comes back twice
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
        return ports
    finally:
        for s in sockets:
            s.close()


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


class RayCluster:
    def __init__(self) -> None:
        # short: Ray's unix sockets live under it, and socket paths are limited to 107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="nlray", dir="/tmp"))
        self.gcs_port, self.client_port = free_ports(2)
        self.token = secrets.token_hex(32)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.client_env()}
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)

    def client_env(self) -> dict[str, str]:
        """What a process needs in its environment to be let in."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def _start(self, *args: str) -> None:
        agent, grpc, runtime_env, metrics = free_ports(4, (self.gcs_port, self.client_port))
        command = [
            *RAY,
            "start",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={grpc}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--metrics-export-port={metrics}",
            "--disable-usage-stats",
            *args,
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> RayCluster:
        self._start(
            "--head",
            f"--port={self.gcs_port}",
            f"--ray-client-server-port={self.client_port}",
            "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
        )
        self._start(f"--address=127.0.0.1:{self.gcs_port}")
        return self

    def raylets(self) -> dict[int, str]:
        """pid -> 'head' | 'worker' for this cluster's raylets."""
        found = {}
        for pid in _all_pids():
            line = _cmdline(pid)
            if "raylet/raylet" in line and str(self.temp_dir) in line:
                found[pid] = "head" if " --head " in f"{line} " else "worker"
        return found

    def node_ids(self) -> set[str]:
        ids = set()
        for pid in self.raylets():
            for arg in _cmdline(pid).split():
                if arg.startswith("--node_id="):
                    ids.add(arg.split("=", 1)[1])
        return ids

    def busy_workers(self, task_name: str) -> dict[int, str]:
        """pid -> 'head' | 'worker' of the worker processes running `task_name` right now."""
        raylets = self.raylets()
        busy = {}
        for pid in _all_pids():
            if _cmdline(pid).startswith(f"ray::{task_name}"):
                parent = _ppid(pid)
                if parent in raylets:
                    busy[pid] = raylets[parent]
        return busy

    def pids(self) -> set[int]:
        """Every process of this cluster: the daemons, and all their descendants."""
        markers = (str(self.temp_dir), f":{self.gcs_port} ")
        pids = _all_pids()
        ours = {p for p in pids if any(m in _cmdline(p) + " " for m in markers)}
        parents = {p: _ppid(p) for p in pids}
        grew = True
        while grew:
            children = {p for p, parent in parents.items() if parent in ours} - ours
            ours |= children
            grew = bool(children)
        ours.discard(os.getpid())
        return ours

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
