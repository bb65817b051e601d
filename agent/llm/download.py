"""Download one hub file (a GGUF of several GB) with a progress line, resuming after a kill.

Why not `hf_hub_download` alone: huggingface_hub (2.x) writes each attempt to a file named for
that process and deletes it on failure, so a download killed at 90% starts again at 0. Here the
partial file has a fixed name (`<file>.part`, guarded by a lock), and the next attempt asks the
server for the rest with an HTTP `Range` request. huggingface_hub still does what it does well:
the URL for `HF_ENDPOINT`, the token headers, and the metadata request (size, ETag, redirects).

Files land in `~/.cache/nasloop/models/<owner>--<repo>/<file>` (`$XDG_CACHE_HOME` honoured); a
file already in the Hugging Face cache (say, from `hf download`) is used where it lies.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from sandbox.locks import exclusive

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_S = 2.0  # a new progress line at most this often (a log, not a terminal)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(RuntimeError):
    """The file could not be had; the message is one line with the reason."""


def models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasloop" / "models"


def local_path(repo: str, filename: str) -> Path:
    return models_dir() / repo.replace("/", "--") / filename


def cached(repo: str, filename: str) -> Path | None:
    """The file if it is already here (our cache, then the Hugging Face cache), else None."""
    ours = local_path(repo, filename)
    if ours.is_file():
        return ours
    from huggingface_hub import try_to_load_from_cache

    # the cache folder read now (huggingface_hub reads HF_HUB_CACHE once, when first imported)
    found = try_to_load_from_cache(repo, filename, cache_dir=os.environ.get("HF_HUB_CACHE"))
    return Path(found) if isinstance(found, str) else None


def download(repo: str, filename: str, *, out: IO[str] = sys.stderr) -> Path:
    """The file, downloaded once (resumed if an earlier attempt was cut); DownloadError if not."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # lazy export

    final = local_path(repo, filename)
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    try:
        # HF_ENDPOINT read now: huggingface_hub reads it once, when first imported
        url = hf_hub_url(repo, filename, endpoint=os.environ.get("HF_ENDPOINT") or None)
        meta = get_hf_file_metadata(url)
    except Exception as exc:  # the hub client's errors are many and version-dependent
        raise DownloadError(f"{repo}/{filename}: {_reason(exc)}") from None
    with exclusive(final.with_name(final.name + ".lock")):
        if final.is_file():  # a twin process finished while we waited
            return final
        have = part.stat().st_size if part.is_file() else 0
        headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
        if have and (meta.size is None or have < meta.size):
            headers["Range"] = f"bytes={have}-"
        elif have:
            have = 0  # a part as long as the file (or longer) is suspect: fetch it again
        request = urllib.request.Request(meta.location, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                if reply.status != 206:  # the server ignored the Range: start over
                    have = 0
                with part.open("ab" if have else "wb") as sink:
                    _copy(reply, sink, have, meta.size, filename, out)
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(
                f"{repo}/{filename}: {_reason(exc)} (run again to resume; "
                f"{part.stat().st_size if part.is_file() else 0} bytes kept in {part})"
            ) from None
        size = part.stat().st_size
        if meta.size is not None and size != meta.size:
            raise DownloadError(
                f"{repo}/{filename}: got {size} of {meta.size} bytes (run again to resume)"
            )
        etag = (meta.etag or "").strip('"')
        if _SHA256.fullmatch(etag) and _sha256(part) != etag:
            part.unlink()
            raise DownloadError(f"{repo}/{filename}: checksum mismatch, partial file removed")
        part.replace(final)
    return final


def _copy(
    reply: http.client.HTTPResponse,
    sink: IO[bytes],
    have: int,
    total: int | None,
    name: str,
    out: IO[str],
) -> None:
    started = last = time.monotonic()
    start_bytes = done = have
    if have:
        print(f"download: resuming {name} at {_mb(have)}", file=out, flush=True)
    while chunk := reply.read1(CHUNK_BYTES):  # what has arrived: a kill keeps all of it
        sink.write(chunk)
        done += len(chunk)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            print(_progress(name, done, total, (done - start_bytes) / (now - started)), file=out)
            out.flush()
    sink.flush()
    os.fsync(sink.fileno())
    rate = (done - start_bytes) / max(time.monotonic() - started, 1e-6)
    print(_progress(name, done, total, rate) + " done", file=out, flush=True)


def _progress(name: str, done: int, total: int | None, rate: float) -> str:
    share = f" ({done / total:.0%})" if total else ""
    of = f" of {_mb(total)}" if total else ""
    return f"download: {name} {_mb(done)}{of}{share}, {rate / 1e6:.1f} MB/s"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:240]
