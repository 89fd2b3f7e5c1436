"""One pooled MCP client session, its capped HTTP transport and the SDK's import (``caxton.llm.tools.mcp``).

A ``Session`` is owned by one task on the hub's event loop from opening to closing
(the SDK's task groups must be left by the task that entered them): it opens an
``httpx2`` client with the server's headers and an ``mcp.Client`` over streamable
HTTP, hands the client to every caller, and ends when told or when its transport
fails. Its transport cuts any one answer at ``MAX_ANSWER_SIZE``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("caxton.llm.tools.mcp")

#: Most seconds opening a session (TCP, TLS, the protocol handshake) may take.
CONNECT_TIMEOUT = 10.0
#: Seconds ``close`` waits for a session to end before cancelling it.
CLOSE_TIMEOUT = 2.0
#: Bytes of one answer to a request (a call's result, a listing page) read at most: past it the call fails.
MAX_ANSWER_SIZE = 4 * 1024 * 1024


class Session:
    """One client session, owned by one task on the hub's loop from opening to closing."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[Any] = loop.create_future()
        self._ready.add_done_callback(_retrieve)
        self._closing = asyncio.Event()
        #: When an answer on this session was last cut at ``MAX_ANSWER_SIZE`` (the SDK then fails that request).
        self._cut_at: float | None = None
        self.task = loop.create_task(self._own(url, headers), name=f"mcp-session {where(url)}")
        self._watchdog = loop.call_later(CONNECT_TIMEOUT, self._connect_overdue)

    @property
    def ended(self) -> bool:
        return self.task.done() or self._closing.is_set()

    async def client(self) -> Any:
        """The connected ``mcp.Client`` (waits for the handshake; a waiter's cancellation leaves it running)."""
        return await asyncio.shield(self._ready)

    def end(self) -> None:
        self._closing.set()

    async def close(self) -> None:
        self.end()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), CLOSE_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError, Exception):
            self.task.cancel()

    def _tripped(self) -> None:
        self._cut_at = time.monotonic()

    def raise_if_cut(self, started: float, exc: Exception) -> None:
        """A request that failed after an answer was cut since it started failed for that (a truncated answer
        is a parse error to the SDK); raises ``AnswerTooLarge``."""
        if self._cut_at is not None and self._cut_at >= started:
            raise AnswerTooLarge(f"the server's answer is over {MAX_ANSWER_SIZE:,} bytes") from exc

    def _connect_overdue(self) -> None:
        if not self._ready.done():
            self.task.cancel()

    async def _own(self, url: str, headers: dict[str, str]) -> None:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        try:
            timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=None)  # calls are bounded by their own deadlines
            async with httpx2.AsyncClient(headers=headers, timeout=timeout, trust_env=False,
                                          transport=_capped_transport(MAX_ANSWER_SIZE, self._tripped)) as http:
                async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
                    self._ready.set_result(client)
                    await self._closing.wait()
        except asyncio.CancelledError:
            if not self._ready.done():
                self._ready.set_exception(TimeoutError(f"no MCP handshake within {CONNECT_TIMEOUT:g}s"))
        except BaseException as exc:  # a session that breaks ends; the next call opens another
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                log.debug("MCP session to %s ended: %r", where(url), exc)
        finally:
            self._watchdog.cancel()


def import_sdk() -> None:
    """Import the SDK (a second or more on a busy host) outside any call's deadline; then it is cached.

    Its loggers are quietened unless a level was set for them: ``httpx2`` logs every request at INFO and the
    SDK a traceback for each malformed answer, which the call's own result and log line already report.
    """
    import httpx2  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401

    for name, level in _QUIET.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


_QUIET = {"httpx2": logging.WARNING, "mcp": logging.CRITICAL}


class AnswerTooLarge(Exception):
    """An MCP server's answer to one request went past ``MAX_ANSWER_SIZE``."""


def _capped_transport(limit: int, tripped: Callable[[], None]) -> Any:
    """An httpx2 transport that cuts the answer to a POST (one request) at ``limit`` bytes.

    The SDK reads a JSON answer whole; this keeps a runaway server from filling the engine's memory.
    The cut answer is a parse error for that request only (the session goes on); ``tripped`` is told.
    Both answer forms are cut (JSON, or an SSE stream for that request); the session's long-lived GET
    stream (server notifications) is not.
    """
    import httpx2

    class Capped(httpx2.AsyncByteStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def __aiter__(self) -> Any:
            read = 0
            async for chunk in self._inner:
                read += len(chunk)
                if read > limit:
                    tripped()
                    return
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    class Transport(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.AsyncHTTPTransport(trust_env=False)

        async def handle_async_request(self, request: Any) -> Any:
            response = await self._inner.handle_async_request(request)
            if request.method == "POST":
                response.stream = Capped(response.stream)
            return response

        async def aclose(self) -> None:
            await self._inner.aclose()

    return Transport()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a session's failure seen (it reaches every waiter; with none, asyncio would log it)."""
    if not future.cancelled():
        future.exception()


# -- results and failures --------------------------------------------------------------------------------



def where(url: str) -> str:
    """A URL without its query (which might carry a key) for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"

