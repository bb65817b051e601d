"""The sandbox image: build it, or say what is there.

    python -m sandbox.image build [--kind auto|local|cuda] [--tag nasloop-sandbox:latest]
    python -m sandbox.image status [--tag ...]

Two kinds, told apart by the image's labels (the Docker backend reads them, nothing else):

- `cuda`: `docker build` of sandbox/Dockerfile, an official PyTorch runtime image. For machines with
  an NVIDIA GPU, the NVIDIA container toolkit and a registry.
- `local`: no registry needed. A rootfs of a few kilobytes (empty mount points, /etc/passwd and
  /etc/group with uid/gid 65534, the host's /etc/ld.so.cache, /bin, /lib... as links into /usr) is
  `docker import`ed; at run time the backend bind-mounts the host's /usr and the host Python
  prefix(es) read-only at the same paths, so the container runs the host's own interpreter and
  torch. Building it takes about a second; it is only valid on the host that built it.

Labels: `nasloop.kind` (local|cuda), `nasloop.python` (the interpreter inside the container) and
`nasloop.host_mounts` (JSON list of host paths to bind read-only; empty for cuda).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TAG = "nasloop-sandbox:latest"
LABEL_KIND = "nasloop.kind"
LABEL_PYTHON = "nasloop.python"
LABEL_HOST_MOUNTS = "nasloop.host_mounts"
KINDS = ("local", "cuda")
DOCKERFILE = Path(__file__).with_name("Dockerfile")
BUILD_HINT = "python -m sandbox.image build"

# The sandbox user. 65534 is nobody/nogroup on Debian and Ubuntu, and owns nothing on the host.
SANDBOX_UID = 65534
SANDBOX_GID = 65534


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    kind: str
    python: str
    host_mounts: tuple[str, ...]

    def missing_mounts(self) -> list[str]:
        """Host paths to bind that this host lacks (a local image built elsewhere)."""
        return [p for p in self.host_mounts if not os.path.isdir(p)]


def read_labels(labels: dict[str, str] | None, tag: str) -> ImageInfo:
    """Parse the nasloop labels; ValueError when the image is not one of ours."""
    labels = labels or {}
    kind = labels.get(LABEL_KIND)
    python = labels.get(LABEL_PYTHON)
    if kind not in KINDS or not python:
        raise ValueError(f"image {tag} has no nasloop labels: rebuild it with `{BUILD_HINT}`")
    mounts = json.loads(labels.get(LABEL_HOST_MOUNTS) or "[]")
    if not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts):
        raise ValueError(f"image {tag}: label {LABEL_HOST_MOUNTS} is not a JSON list of paths")
    return ImageInfo(tag=tag, kind=kind, python=python, host_mounts=tuple(mounts))


def image_info(client: Any, tag: str = DEFAULT_TAG) -> ImageInfo | None:
    """The image's nasloop labels, or None when no image has this tag."""
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return read_labels(image.labels, tag)


# --- local kind: what the host lends -------------------------------------------------------------


def host_python() -> str:
    """The interpreter the local image runs: this one, as a path that still works inside."""
    exe = os.path.abspath(sys.executable)
    if sys.prefix != sys.base_prefix:
        # A venv is recognised by the pyvenv.cfg next to the path it was started from; resolving
        # the symlink would start the base interpreter without the venv's site-packages.
        return exe
    return os.path.realpath(exe)


def _torch_site_dir() -> str | None:
    """The site-packages holding torch, found without importing it (an import costs seconds)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(os.path.abspath(next(iter(spec.submodule_search_locations))))


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drop duplicates and paths that sit under another path of the list."""
    kept: list[str] = []
    for p in sorted({os.path.normpath(p) for p in paths}):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


# Top-level directories that merged-/usr systems make links into /usr. Where the host has a real
# directory instead, it is lent like /usr.
_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def host_mounts() -> list[str]:
    """Host directories the local image needs bind-mounted read-only at the same paths."""
    paths = ["/usr"]
    paths += [f"/{d}" for d in _USR_LINKS if os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")]
    for prefix in (sys.base_prefix, sys.prefix):
        # Both spellings when they differ: the interpreter finds its prefix from the path it was
        # started with, the kernel follows the link.
        paths += [os.path.abspath(prefix), os.path.realpath(prefix)]
    torch_dir = _torch_site_dir()
    if torch_dir:
        paths += [torch_dir, os.path.realpath(torch_dir)]
    return _outermost(paths)


def local_rootfs_tar() -> bytes:
    """The few kilobytes that make the local image's root filesystem."""
    now = int(time.time())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, now, link
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ("etc", "usr", "job", "data", "out", "proc", "sys", "dev", "root"):
            add(d, tarfile.DIRTYPE, 0o755)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        for d in _USR_LINKS:
            if os.path.islink(f"/{d}"):
                add(d, tarfile.SYMTYPE, 0o777, link=os.readlink(f"/{d}"))
        passwd = (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        group = f"root:x:0:\nnogroup:x:{SANDBOX_GID}:\n"
        add("etc/passwd", tarfile.REGTYPE, 0o644, passwd.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, group.encode())
        ld_cache = Path("/etc/ld.so.cache")
        if ld_cache.is_file():  # lets the dynamic loader find /usr/lib/... libraries quickly
            add("etc/ld.so.cache", tarfile.REGTYPE, 0o644, ld_cache.read_bytes())
    return buf.getvalue()


def _label_instruction(labels: dict[str, str]) -> str:
    """A Dockerfile `LABEL` line with each value double-quoted and escaped."""

    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "LABEL " + " ".join(f"{k}={quote(v)}" for k, v in labels.items())


def build_local(client: Any, tag: str = DEFAULT_TAG) -> ImageInfo:
    from docker.utils import parse_repository_tag

    repository, version = parse_repository_tag(tag)
    labels = {
        LABEL_KIND: "local",
        LABEL_PYTHON: host_python(),
        LABEL_HOST_MOUNTS: json.dumps(host_mounts()),
    }
    changes = [_label_instruction(labels), f"USER {SANDBOX_UID}:{SANDBOX_GID}", "WORKDIR /tmp"]
    client.api.import_image_from_data(
        local_rootfs_tar(), repository=repository, tag=version or "latest", changes=changes
    )
    info = image_info(client, tag)
    # The labels went through Dockerfile quoting; read them back rather than trust it.
    if (
        info is None
        or info.python != labels[LABEL_PYTHON]
        or list(info.host_mounts) != json.loads(labels[LABEL_HOST_MOUNTS])
    ):
        raise RuntimeError(f"imported {tag}, but its labels did not survive: {info}")
    return info


# --- cuda kind ----------------------------------------------------------------------------------


def build_cuda(
    client: Any, tag: str = DEFAULT_TAG, base: str | None = None, log: Callable[[str], None] = print
) -> ImageInfo:
    buildargs = {"BASE": base} if base else None
    with DOCKERFILE.open("rb") as dockerfile:
        # fileobj alone sends a context holding only the Dockerfile: no project code goes in.
        stream = client.api.build(
            fileobj=dockerfile, tag=tag, rm=True, forcerm=True, decode=True, buildargs=buildargs
        )
        for chunk in stream:
            if "error" in chunk:
                raise RuntimeError(f"docker build failed: {chunk['error'].strip()}")
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                log(text)
    info = image_info(client, tag)
    if info is None or info.kind != "cuda":
        raise RuntimeError(f"built {tag}, but it does not carry the cuda labels: {info}")
    return info


def choose_kind(client: Any) -> tuple[str, str]:
    """`auto`: cuda when the engine can hand out NVIDIA GPUs, else local; with the reason."""
    runtimes = sorted((client.info().get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return "cuda", "the engine lists an nvidia runtime"
    return "local", f"the engine lists no nvidia runtime (runtimes: {', '.join(runtimes) or '-'})"


# --- command line -------------------------------------------------------------------------------


def _describe(info: ImageInfo) -> str:
    text = f"{info.tag}: present, kind={info.kind}, python={info.python}"
    if info.host_mounts:
        text += f", host mounts (ro)={', '.join(info.host_mounts)}"
        missing = info.missing_mounts()
        if missing:
            text += f"; MISSING on this host: {', '.join(missing)} (rebuild with `{BUILD_HINT}`)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.image", description="sandbox image")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the sandbox image")
    build.add_argument("--kind", choices=("auto", *KINDS), default="auto")
    build.add_argument("--tag", default=DEFAULT_TAG)
    build.add_argument("--base", default=None, help="cuda only: another FROM image")
    status = sub.add_parser("status", help="say whether the image exists and its kind")
    status.add_argument("--tag", default=DEFAULT_TAG)
    args = parser.parse_args(argv)

    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        from sandbox.backends.engine import engine_error

        print(engine_error(exc), file=sys.stderr)
        return 2

    try:
        if args.command == "status":
            info = image_info(client, args.tag)
            if info is None:
                print(f"{args.tag}: missing (build it with `{BUILD_HINT}`)")
                return 1
            print(_describe(info))
            return 0

        if args.kind == "auto":
            kind, why = choose_kind(client)
        else:
            kind, why = args.kind, "asked for with --kind"
        try:
            previous = client.images.get(args.tag).id
        except docker.errors.ImageNotFound:
            previous = None
        started = time.perf_counter()
        if kind == "cuda":
            info = build_cuda(client, args.tag, base=args.base)
        else:
            info = build_local(client, args.tag)
        seconds = time.perf_counter() - started
        if previous and previous != client.images.get(args.tag).id:
            # The tag moved: drop the old image unless something still uses it.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(previous)
        print(f"built {info.tag}: kind={kind} because {why} ({seconds:.1f} s)")
        return 0
    except (ValueError, RuntimeError, docker.errors.DockerException) as exc:
        print(f"sandbox.image: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
