"""A real HTTP server that serves files the way the Hugging Face hub does, for `HF_ENDPOINT`.

    with FakeHub({"owner/repo": {"model.gguf": data}}, bytes_per_s=2e6) as hub:
        env["HF_ENDPOINT"] = hub.url
        hub.requests  # (method, path, Range header or None, bytes sent) per request

It answers `HEAD` and `GET /{owner}/{repo}/resolve/{revision}/{file}` with the headers
huggingface_hub reads (X-Repo-Commit, ETag = the file's sha256 as for LFS files, Content-Length),
honours `Range: bytes=N-` with a 206 (a resumed download asks for the rest), and can throttle
its sending so that a test's kill lands mid-file. Anything else is a 404, as on the hub.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_PATH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")
_SLICE = 64 * 1024


class FakeHub:
    def __init__(
        self, repos: Mapping[str, Mapping[str, bytes]], bytes_per_s: float | None = None
    ) -> None:
        self.repos = {repo: dict(files) for repo, files in repos.items()}
        self.bytes_per_s = bytes_per_s  # None: as fast as the socket takes it
        self.requests: list[tuple[str, str, str | None, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, method: str, path: str, range_header: str | None, sent: int) -> None:
        with self._lock:
            self.requests.append((method, path, range_header, sent))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            match = _PATH.match(self.path.split("?")[0])
            data = hub.repos.get(match["repo"], {}).get(match["file"]) if match else None
            if data is None:
                hub.record(self.command, self.path, None, 0)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            asked = self.headers.get("Range")
            start = 0
            if asked and (found := _RANGE.match(asked)) and int(found[1]) < len(data):
                start = int(found[1])
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            sent = 0
            try:
                if body:
                    sent = self._send(data, start)
            finally:
                hub.record(self.command, self.path, asked, sent)

        def _send(self, data: bytes, start: int) -> int:
            sent = 0
            for offset in range(start, len(data), _SLICE):
                piece = data[offset : offset + _SLICE]
                try:
                    self.wfile.write(piece)
                    self.wfile.flush()
                except OSError:  # the client went away (a killed download)
                    break
                sent += len(piece)
                if hub.bytes_per_s:
                    time.sleep(len(piece) / hub.bytes_per_s)
            return sent

    return Handler
