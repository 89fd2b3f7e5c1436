"""An MCP server for tests: the SDK's own ``MCPServer`` (FastMCP in mcp 1.x) over streamable HTTP on 127.0.0.1.

Runs in a subprocess (``python -m tests.support.mcp_app``, the server itself) so its event loop,
logging and sessions stay out of the test process, and stopping it is a kill:

    with running_mcp_server(token="s3cret") as server:
        server.url            # http://127.0.0.1:PORT/mcp (needs "Authorization: Bearer s3cret")
        server.malformed_url  # the same tools, but every tools/call result is malformed ("content" not a list)
        server.garbage_url    # 200 with a body that is not JSON-RPC
        server.counted_url    # the same tools, every request counted: server.counted() says how many
        server.stop()         # now the port is closed ("down")

Tools: ``add(a, b)``, ``echo(text)``, ``whoami()`` (the Authorization header it was
called with), ``slow(seconds)`` (sleeps), ``fail()`` (raises: an error result), ``big(size)`` (a long text),
``secret()`` (for "a tool the agent may not use"). Every path refuses a request
without ``Authorization: Bearer <token>`` with 401 when a token is set.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.support.paths import REPO_ROOT, free_port, python_path

START_TIMEOUT = 30.0


@dataclass
class McpTestServer:
    """A running test server (the subprocess and where it listens)."""

    process: subprocess.Popen[str]
    port: int
    token: str | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def malformed_url(self) -> str:
        return f"{self.base}/malformed"

    @property
    def garbage_url(self) -> str:
        return f"{self.base}/garbage"

    @property
    def counted_url(self) -> str:
        return f"{self.base}/counted"

    def counted(self) -> int:
        """How many requests ``counted_url`` has received."""
        answer = httpx.get(f"{self.base}/seen", timeout=30)
        answer.raise_for_status()
        return int(answer.json()["counted"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def running_mcp_server(token: str | None = None) -> Iterator[McpTestServer]:
    command = [sys.executable, "-m", "tests.support.mcp_app", "--port", str(free_port())]
    command += ["--token", token] if token else []
    env = {**os.environ, "PYTHONPATH": python_path(os.environ)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    server = None
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""  # "port N" once it listens
        if not line.startswith("port "):
            raise RuntimeError(f"the MCP test server did not start (exit {process.poll()}): {line!r}")
        server = McpTestServer(process, int(line.split()[1]), token)
        yield server
    finally:
        if server is not None:
            server.stop()
        else:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
