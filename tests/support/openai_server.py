"""A small OpenAI-compatible chat-completions server for tests (real HTTP on 127.0.0.1).

Used by tests of ``caxton.llm.providers`` and the config-agent runtime,
and by any engine test that needs the ``openai`` provider. Replies are
deterministic: ``echo(<model>) #<n messages>: <last user message>``. Tests
can script failures:

    with running_openai_server() as server:
        server.fail(2, status=500)          # the next 2 requests answer 500
        server.fail(1, status=401, body=...)
        server.delay = 0.5                  # every request waits 0.5 s first
        server.garbage = True               # 200 with a non-JSON body
        server.call_tools([("memory_store", {"name": "x"})])  # the next request answers with these tool_calls
        ... server.url ...                  # base_url, ends in /v1
        server.requests                     # what was received (headers, body)

From a shell (the walkthrough of docs/tools.md), until interrupted:

    python -m tests.support.openai_server --port 8788 --call-tools '[["calculator", {"expression": "1+1"}]]'

answers the first request with those ``tool_calls`` (``--times N``: the first N), then echoes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Scripted:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class OpenAITestServer:
    """State and control of one running test server."""

    def __init__(self, port: int = 0) -> None:
        self.delay = 0.0
        self.garbage = False
        self.requests: list[Received] = []
        self._script: deque[Scripted] = deque()
        self._counter = 0
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="openai-test-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def fail(self, times: int, *, status: int = 500, body: str | None = None, headers: dict[str, str] | None = None) -> None:
        """The next ``times`` requests answer ``status`` (an OpenAI-style error body by default)."""
        text = body if body is not None else json.dumps({"error": {"message": f"scripted failure {status}"}})
        with self._lock:
            self._script.extend(Scripted(status, text, dict(headers or {})) for _ in range(times))

    def call_tools(self, calls: list[tuple[str, Any]], *, times: int = 1) -> None:
        """The next ``times`` requests answer with ``tool_calls``: one per (name, arguments) in order; arguments
        that are not a string are sent JSON-encoded (a string is sent as is, e.g. to send bad JSON)."""
        with self._lock:
            for _ in range(times):
                self._counter += 1
                parts = [{"id": f"call_{self._counter}_{i}", "type": "function",
                          "function": {"name": name, "arguments": a if isinstance(a, str) else json.dumps(a)}}
                         for i, (name, a) in enumerate(calls, 1)]
                body = {"id": "chatcmpl-tools", "object": "chat.completion", "model": "scripted",
                        "choices": [{"index": 0, "finish_reason": "tool_calls",
                                     "message": {"role": "assistant", "content": None, "tool_calls": parts}}]}
                self._script.append(Scripted(200, json.dumps(body), {"content-type": "application/json"}))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def answer(self, received: Received) -> Scripted:
        with self._lock:
            self.requests.append(received)
            scripted = self._script.popleft() if self._script else None
        if self.delay:
            time.sleep(self.delay)
        if scripted is not None:
            return scripted
        if self.garbage:
            return Scripted(200, "<html>this is not JSON</html>")
        return Scripted(200, json.dumps(_completion(received.body)), {"content-type": "application/json"})


def _completion(body: Any) -> dict[str, Any]:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    model = body.get("model", "?") if isinstance(body, dict) else "?"
    last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = f"echo({model}) #{len(messages)}: {last_user}"
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(messages), "completion_tokens": 1, "total_tokens": len(messages) + 1},
    }


def _handler_for(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per response (no 40 ms delayed-ACK stall)
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0") or 0))
            try:
                body: Any = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(Scripted(404, json.dumps({"error": {"message": f"no route {self.path}"}})))
                return
            self._send(server.answer(received))

        def _send(self, reply: Scripted) -> None:
            data = reply.body.encode("utf-8")
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def running_openai_server() -> Iterator[OpenAITestServer]:
    """Start a server on a free 127.0.0.1 port; stop it afterwards."""
    server = OpenAITestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAITestServer]:
    """One local OpenAI-compatible server per test module (``running_openai_server``)."""
    with running_openai_server() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    """Serve on 127.0.0.1 until interrupted (SIGINT or SIGTERM); see the module docstring."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.support.openai_server")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--call-tools", default="[]", help='JSON list of [name, arguments] pairs')
    parser.add_argument("--times", type=int, default=1, help="how many requests answer with the tool calls")
    args = parser.parse_args(argv)
    server = OpenAITestServer(args.port)
    calls = [(str(name), arguments) for name, arguments in json.loads(args.call_tools)]
    if calls:
        server.call_tools(calls, times=args.times)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"OpenAI-compatible test server on {server.url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
