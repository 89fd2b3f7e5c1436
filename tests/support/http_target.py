"""A small HTTP server on 127.0.0.1 for the ``http_client`` tool's tests (real HTTP, scripted routes).

Routes: ``/hello`` (text), ``/echo`` (POST: the body back, as JSON), ``/big`` (2 MiB), ``/slow`` (answers after
``slow_seconds``), ``/away`` (302 to ``http://localhost:<port>/hello``: the same server under another name),
``/here`` (302 to ``/hello``). ``hits`` lists the paths served.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HttpTarget:
    def __init__(self) -> None:
        self.slow_seconds = 2.0
        self.hits: list[str] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(target: HttpTarget) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            target.hits.append(self.path)
            if self.path == "/hello":
                self._send(200, b"hello from the target", "text/plain")
            elif self.path == "/big":
                self._send(200, b"x" * (2 * 1024 * 1024), "text/plain")
            elif self.path == "/slow":
                time.sleep(target.slow_seconds)
                self._send(200, b"late", "text/plain")
            elif self.path == "/away":
                self._send(302, b"", "text/plain", {"location": f"http://localhost:{target.port}/hello"})
            elif self.path == "/here":
                self._send(302, b"", "text/plain", {"location": "/hello"})
            else:
                self._send(404, b"no such route", "text/plain")

        def do_POST(self) -> None:
            target.hits.append(self.path)
            raw = self.rfile.read(int(self.headers.get("content-length", "0") or 0))
            self._send(200, json.dumps({"received": raw.decode("utf-8")}).encode(), "application/json")

        def _send(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", kind)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def running_http_target() -> Iterator[HttpTarget]:
    target = HttpTarget()
    target._thread.start()
    try:
        yield target
    finally:
        target._http.shutdown()
        target._http.server_close()
        target._thread.join(timeout=5)
