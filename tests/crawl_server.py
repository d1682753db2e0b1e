"""A real HTTP server on 127.0.0.1 that serves the recorded source files in the shapes of the
live endpoints, with faults injected on demand (429 + Retry-After, 500, timeout, truncated
body, invalid JSON, oversize body). Conditional requests are answered with 304 by ETag."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[str, dict[str, list[str]]], tuple[int, dict[str, str], bytes]]


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


class _QuietServer(ThreadingHTTPServer):
    """The injected faults (a stalled or oversize answer) make the client hang up mid-response;
    that is the point of them, so a dropped connection is not printed as a server error."""

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


@dataclass
class LeaderboardServer:
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (body, content type)
    handlers: dict[str, Handler] = field(default_factory=dict)  # path prefix -> dynamic handler
    faults: dict[str, deque[str]] = field(default_factory=dict)
    log: list[tuple[str, int | str]] = field(default_factory=list)
    timeout_seconds: float = 2.0
    oversize_bytes: int = 0

    def add(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.files[path] = (body, content_type)

    def fault(self, path: str, *kinds: str) -> None:
        self.faults.setdefault(path, deque()).extend(kinds)

    def requests_for(self, prefix: str) -> list[tuple[str, int | str]]:
        return [entry for entry in self.log if entry[0].startswith(prefix)]

    def __enter__(self) -> LeaderboardServer:
        server = self

        class Handler_(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path, query = parts.path, parse_qs(parts.query)
                queue = server.faults.get(path)
                if queue:
                    kind = queue.popleft()
                    server.log.append((path, kind))
                    # the client hangs up on an oversize or slow answer, as it should
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._fault(kind)
                    return
                status, headers, body = server._answer(path, query)
                if status == 200 and "ETag" in headers and self.headers.get("If-None-Match") == headers["ETag"]:
                    status, body = 304, b""
                server.log.append((path, status))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _fault(self, kind: str) -> None:
                if kind == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif kind == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif kind == "timeout":
                    time.sleep(server.timeout_seconds)
                    self.close_connection = True
                elif kind == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b'{"partial": ')
                    self.close_connection = True
                elif kind == "badjson":
                    body = b'{"this is": not json'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif kind == "oversize":
                    size = server.oversize_bytes
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    self.wfile.write(b" " * size)
                else:
                    raise ValueError(kind)

        self._server = _QuietServer(("127.0.0.1", 0), Handler_)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path in self.files:
            body, content_type = self.files[path]
            return 200, {"Content-Type": content_type, "ETag": etag_of(body)}, body
        for prefix, handler in self.handlers.items():
            if path.startswith(prefix):
                return handler(path, query)
        return 404, {"Content-Type": "text/plain"}, b"not found"
