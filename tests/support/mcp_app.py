"""The MCP test server process (``tests.support.mcp_server`` starts and stops it; its docstring says what it serves).

    python -m tests.support.mcp_app --port N [--token T]    # prints "port N" once it listens
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def _app(token: str | None) -> Any:
    server = MCPServer("caxton-test", log_level="CRITICAL")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The Authorization header this call came with."""
        request = ctx.request_context.request
        return str(request.headers.get("authorization", "")) if request is not None else ""

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise ToolError("the test tool failed on purpose")

    @server.tool()
    def big(size: int) -> str:
        """A text of ``size`` bytes."""
        return "x" * size

    @server.tool()
    def secret() -> str:
        """A tool no test agent may use."""
        return "the secret"

    return _Gate(server.streamable_http_app(json_response=True), token)


class _Gate:
    """ASGI wrapper: the Authorization check, ``/garbage``, ``/malformed`` (the MCP app with broken results),
    ``/counted`` (the MCP app, its requests counted) and ``/seen`` (that count, no token needed)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token
        self.counted = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/seen":
            await _answer(send, 200, json.dumps({"counted": self.counted}).encode(), b"application/json")
            return
        if scope["path"] == "/counted":
            self.counted += 1
            scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        headers = dict(scope["headers"])
        if self.token and headers.get(b"authorization") != f"Bearer {self.token}".encode():
            await _answer(send, 401, b'{"error": "unauthorized"}', b"application/json")
            return
        if scope["path"] == "/garbage":
            await _answer(send, 200, b"this is not JSON-RPC", b"application/json")
            return
        if scope["path"] == "/malformed":
            await self.app({**scope, "path": "/mcp", "raw_path": b"/mcp"}, receive, _Malform(send))
            return
        await self.app(scope, receive, send)


class _Malform:
    """A ``send`` that turns each tools/call result's ``content`` list into a string."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.start: dict[str, Any] | None = None
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if message.get("more_body"):
            return
        body = self.body
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("result"), dict) and "content" in data["result"]:
            data["result"]["content"] = "not a list of content blocks"
            data["result"].pop("structuredContent", None)
            body = json.dumps(data).encode()
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        await self.send({**self.start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await self.send({"type": "http.response.body", "body": body})


async def _answer(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = uvicorn.Server(uvicorn.Config(_app(args.token), log_level="critical", lifespan="on"))
    port = sock.getsockname()[1]

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        print(f"port {port}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
