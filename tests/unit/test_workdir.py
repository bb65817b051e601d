"""Job dirs are named after their owner, and only a gone owner's are reaped (backends/workdir.py).

The SIGKILLed evaluator, for real, is in tests/integration/test_workdir_reap.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.backends import workdir
from sandbox.backends.workdir import JOB_DIR_PREFIX, make_job_dir, owner_tag, reap_job_dirs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount and chown need root")


def stat_field(pid: int, index: int) -> str:
    """A field of /proc/<pid>/stat, counted from the state (field 3) on."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[index]


def start_of(pid: int) -> str:
    return stat_field(pid, 19)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not us."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def gone_pid() -> tuple[int, str]:
    """The pid and start time of a process that has exited and been waited for."""
    proc = subprocess.Popen(["sleep", "600"])
    tag = owner_tag(proc.pid)
    proc.kill()
    proc.wait()
    pid, start = tag.split("-")
    return int(pid), start


def job_dir(root: Path, tag: str, suffix: str = "abcd1234") -> Path:
    path = root / f"{JOB_DIR_PREFIX}{tag}-{suffix}"
    (path / "job").mkdir(parents=True)
    (path / "out").mkdir()
    (path / "job" / "candidate.py").write_text("x = 1\n")
    return path


def test_job_dir_names_its_owner_pid_and_start_time(tmp_path: Path) -> None:
    work = make_job_dir(tmp_path)
    assert work.parent == tmp_path and work.is_dir()
    assert work.name.startswith(f"{JOB_DIR_PREFIX}{os.getpid()}-{start_of(os.getpid())}-")
    assert owner_tag() == f"{os.getpid()}-{start_of(os.getpid())}"
    workdir.remove_job_dir(work)
    assert not work.exists()


def test_only_gone_owners_dirs_are_reaped(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    dead_pid, dead_start = gone_pid()
    zombie = subprocess.Popen(["sleep", "600"])
    zombie_tag = owner_tag(zombie.pid)
    zombie.kill()  # not waited for: a zombie until the finally below
    deadline = time.monotonic() + 10
    while stat_field(zombie.pid, 0) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        dead = job_dir(tmp_path, f"{dead_pid}-{dead_start}")
        reused = job_dir(tmp_path, f"{sleeper.pid}-{int(start_of(sleeper.pid)) - 1}")
        defunct = job_dir(tmp_path, zombie_tag)
        dead_unknown_start = job_dir(tmp_path, f"{dead_pid}-na", "other")
        mine = job_dir(tmp_path, owner_tag())
        live = job_dir(tmp_path, owner_tag(sleeper.pid))
        live_unknown_start = job_dir(tmp_path, f"{sleeper.pid}-na")
        old_style = tmp_path / f"{JOB_DIR_PREFIX}x7k2m9qa"  # before names carried an owner
        old_style.mkdir()
        a_file = tmp_path / f"{JOB_DIR_PREFIX}{dead_pid}-{dead_start}-file"
        a_file.write_text("not a dir")
        a_link = tmp_path / f"{JOB_DIR_PREFIX}{dead_pid}-{dead_start}-link"
        a_link.symlink_to(mine)

        removed = reap_job_dirs(tmp_path)

        assert sorted(removed) == sorted([dead, reused, defunct, dead_unknown_start])
        assert not any(p.exists() for p in removed)
        kept = [mine, live, live_unknown_start, old_style, a_file, a_link]
        assert all(p.exists() or p.is_symlink() for p in kept)
        assert (mine / "job" / "candidate.py").is_file()  # the link's target was not followed
    finally:
        zombie.wait()


@needs_root
def test_another_users_dir_is_left_alone(tmp_path: Path) -> None:
    dead_pid, dead_start = gone_pid()
    theirs = tmp_path / f"{JOB_DIR_PREFIX}{dead_pid}-{dead_start}-theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    assert reap_job_dirs(tmp_path) == []
    assert theirs.is_dir()


@needs_root
def test_a_mount_in_a_reaped_dir_is_unmounted_first(tmp_path: Path) -> None:
    dead_pid, dead_start = gone_pid()
    dead = job_dir(tmp_path / "with space", f"{dead_pid}-{dead_start}")
    out = dead / "out"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "nasloop-unit", str(out)], check=True)
    (out / "report.json").write_text("{}")
    try:
        assert reap_job_dirs(dead.parent) == [dead]
        assert not dead.exists()
        assert str(out) not in [target for _, target in workdir.mounts()]
    finally:
        if str(out) in [target for _, target in workdir.mounts()]:
            subprocess.run(["umount", "-l", str(out)], check=False)


def test_mount_table_escapes_are_undone() -> None:
    assert workdir._unescape(r"/tmp/with\040space\011tab\134back") == "/tmp/with space\ttab\\back"


def test_a_container_owner_label_names_the_process_and_its_start() -> None:
    """Container owners carry pid and start time, so a reused pid is not a live owner."""
    import os
    import socket

    from sandbox.backends.docker import owner_label, parse_owner_label
    from sandbox.backends.workdir import owner_alive

    host, pid, start = parse_owner_label(owner_label()) or ("", 0, "")
    assert (host, pid) == (socket.gethostname(), os.getpid()) and start != "na"
    assert owner_alive(pid, start)
    assert not owner_alive(pid, str(int(start) + 1))  # same pid, another process's start
    assert parse_owner_label(f"{host}:{pid}") == (host, pid, "na")  # a label from before
    assert parse_owner_label("garbage") is None
