"""MCP servers as tools: ``server.tool`` calls over streamable HTTP with the official ``mcp`` SDK.

``McpHub`` is the engine's one MCP client and the ``ToolSource`` of every tool
``server.tool`` an agent declares (``mcp_servers`` in its file; docs/tools.md).

- **Bridge.** The tool loop calls tools from worker threads; the SDK is async. The
  hub runs one event loop in one daemon thread (``caxton-mcp``) for every server and
  agent; a call submits a coroutine to it and waits, both bounded by the call's
  deadline (the coroutine cancels itself at the deadline, so nothing runs on).
- **Sessions.** One pooled client session per server URL and header values, opened
  on first use by a task that owns it (the SDK's task groups must be left by the
  task that entered them) and shared by concurrent calls. A session whose transport
  fails is closed; the next call opens a new one. ``close`` ends them all and the thread.
- **Listings.** A server's ``tools/list`` (description and input schema of each
  tool) is cached for ``LIST_TTL`` seconds (a failed refresh for ``FAILED_LIST_TTL``,
  keeping the last listing) and fetched within ``LIST_TIMEOUT``: a tool of a server
  that is down is still offered to the model (described as unavailable if the server
  never listed it), and its calls fail with the reason.
- **Hosts.** A server whose host is not on the agent's ``security_policy.allowed_hosts``
  (``caxton.rules.hosts``, the rule of ``http_client``) is never contacted: its tools are
  offered, and every call fails ``not_allowed`` (validation refuses such a file: CX326).
- **Headers** are read from the engine's environment when a session opens (never
  from the agent file); their values are part of the session key, so a changed
  variable opens a new session.

Every failure of a call (down, slow, an error result, a malformed result) is an
``errors.ToolFailure`` the loop hands back to the model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from caxton import errors
from caxton.llm.tools.base import JsonValue, Tool, ToolContext
from caxton.llm.tools.mcp_session import CLOSE_TIMEOUT, MAX_ANSWER_SIZE, AnswerTooLarge, Session, import_sdk
from caxton.rules.hosts import host_allowed
from caxton.spec.agent import McpServerSpec
from caxton.spec.tools import mcp_reference

log = logging.getLogger(__name__)

#: Seconds a server's tool listing is reused, and a failed listing remembered.
LIST_TTL = 30.0
FAILED_LIST_TTL = 5.0
#: Most seconds one listing may take (less when the server's ``timeout`` is shorter).
LIST_TIMEOUT = 5.0
#: Pages of ``tools/list`` read at most (a paginator that never ends cannot hang a listing).
MAX_LIST_PAGES = 20
#: What the model is given as the argument schema of a tool whose listing is unavailable.
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}

T = TypeVar("T")
_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Listed:
    """One tool as its server lists it."""

    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class _Listing:
    at: float
    tools: dict[str, Listed] | None
    failure: errors.ToolFailure | None


@dataclass(frozen=True)
class McpTool:
    """One tool ``server.tool`` of an agent: described from the server's listing, called through the hub."""

    hub: McpHub
    server: McpServerSpec
    tool: str
    #: Whether the server's host is on the agent's ``security_policy.allowed_hosts``: if not, it is never contacted.
    host_allowed: bool = True

    @property
    def name(self) -> str:
        return f"{self.server.name}.{self.tool}"

    @property
    def description(self) -> str:
        if not self.host_allowed:
            return f"a tool of MCP server {self.server.name!r}, whose host this agent may not reach"
        try:
            listed = self.hub.listing(self.server).get(self.tool)
        except errors.ToolFailure as failure:
            return f"a tool of MCP server {self.server.name!r}, unavailable now: {failure.message}"
        if listed is None:
            return f"a tool of MCP server {self.server.name!r}, which does not list it now"
        return listed.description

    @property
    def parameters(self) -> Mapping[str, Any]:
        if not self.host_allowed:
            return ANY_OBJECT
        try:
            listed = self.hub.listing(self.server).get(self.tool)
        except errors.ToolFailure:
            return ANY_OBJECT
        return listed.parameters if listed is not None else ANY_OBJECT

    def call(self, arguments: dict[str, Any], deadline: float) -> JsonValue:
        if not self.host_allowed:
            raise errors.ToolFailure(
                f"MCP server {self.server.name!r}: {urlsplit(self.server.url).netloc} is not on this agent's "
                "allowed hosts", reason="not_allowed",
                hint="list the host in the agent file's security_policy.allowed_hosts (caxton validate: CX326)")
        return self.hub.call(self.server, self.tool, arguments, deadline)


class McpHub:
    """The engine's MCP client: sessions, listings, and the ``ToolSource`` of ``server.tool`` names. Thread-safe."""

    def __init__(self, *, environ: Mapping[str, str] | None = None, list_ttl: float = LIST_TTL,
                 failed_list_ttl: float = FAILED_LIST_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._environ = os.environ if environ is None else environ
        self._list_ttl = list_ttl
        self._failed_list_ttl = failed_list_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._listings: dict[_Key, _Listing] = {}
        self._sessions: dict[_Key, Session] = {}  # only touched on the hub's loop
        self._in_flight = 0  # calls and listings running on the loop (only touched there)

    # -- ToolSource -----------------------------------------------------------------------------------

    def names(self) -> Sequence[str]:
        return []  # MCP tools are named by the agent's own mcp_servers, not by the engine

    def build(self, name: str, context: ToolContext) -> Tool | None:
        reference = mcp_reference(name)
        if reference is None:
            return None
        server = next((s for s in context.mcp_servers if s.name == reference[0]), None)
        if server is None or reference[1] not in server.allowed_tools:
            return None
        if not host_allowed(server.url, context.allowed_hosts):
            return McpTool(self, server, reference[1], host_allowed=False)  # its calls fail, nothing is contacted
        import_sdk()  # when the revision starts, not in its first call's time
        return McpTool(self, server, reference[1])

    # -- calls and listings (any thread) --------------------------------------------------------------

    def call(self, server: McpServerSpec, tool: str, arguments: dict[str, Any], deadline: float) -> JsonValue:
        """Call ``tool`` on ``server`` by ``deadline`` (and the server's own ``timeout``); raises ``ToolFailure``."""
        import_sdk()
        if server.timeout is not None:
            deadline = min(deadline, time.monotonic() + server.timeout)
        key, headers = self._key(server)
        what = f"MCP server {server.name!r}: tool {tool!r}"
        result = self._run(self._call(key, server.url, headers, tool, arguments, deadline), deadline, what)
        return _result(server.name, tool, result)

    def listing(self, server: McpServerSpec) -> dict[str, Listed]:
        """The server's tools: from the cache while fresh; after a failed refresh, the last listing it gave.

        Raises ``ToolFailure`` (remembered for ``failed_list_ttl``) when the server never listed its tools.
        """
        import_sdk()
        key, headers = self._key(server)
        with self._lock:
            cached = self._listings.get(key)
        if cached is not None and self._clock() - cached.at < (self._failed_list_ttl if cached.failure
                                                               else self._list_ttl):
            if cached.tools is not None:
                return cached.tools
            assert cached.failure is not None
            failure = cached.failure  # a new exception per caller: one instance raised in many threads would share
            raise errors.ToolFailure(failure.message, reason=failure.reason, hint=failure.hint)  # its traceback
        deadline = time.monotonic() + min(LIST_TIMEOUT, server.timeout or LIST_TIMEOUT)
        try:
            tools = self._run(self._list(key, server.url, headers, deadline), deadline,
                              f"MCP server {server.name!r}: tools/list")
        except errors.ToolFailure as failure:
            stale = cached.tools if cached is not None else None
            with self._lock:
                self._listings[key] = _Listing(self._clock(), stale, failure)
            if stale is None:
                raise
            return stale
        with self._lock:
            self._listings[key] = _Listing(self._clock(), tools, None)
        return tools

    def close(self) -> None:
        """End every session and the hub's thread; later calls fail."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(timeout=CLOSE_TIMEOUT * 2)
        except Exception:  # the thread stops below whatever the sessions did
            log.warning("MCP sessions did not close cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT * 2)
        if not thread.is_alive():
            loop.close()

    def stats(self) -> dict[str, int]:
        """Open (or opening) sessions, calls and listings running now, and whether the hub's thread runs."""
        with self._lock:
            running = int(self._thread is not None and self._thread.is_alive())
        return {"sessions": len(self._sessions), "in_flight": self._in_flight, "threads": running}

    # -- the bridge -----------------------------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T], deadline: float, what: str) -> T:
        """Run ``work`` on the hub's loop and wait for it by ``deadline``; failures become ``ToolFailure``."""
        try:
            loop = self._started()
        except errors.ToolFailure:
            work.close()
            raise
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            # the coroutine ends itself at the deadline; the margin only lets its failure arrive
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise errors.ToolFailure(f"{what} did not answer in time", reason="timeout",
                                     hint="raise resource_limits.tool_call_timeout (or the server's timeout) "
                                          "in the agent file, or check the server") from None
        except errors.ToolFailure:
            raise
        except BaseException as exc:
            raise _failure(what, exc) from None

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise errors.ToolFailure("the engine is stopping: MCP calls are refused", reason="failed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="caxton-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _key(self, server: McpServerSpec) -> tuple[_Key, dict[str, str]]:
        headers = {}
        for header, source in server.headers.items():
            value = self._environ.get(source.env)
            if value is None:
                raise errors.ToolFailure(
                    f"MCP server {server.name!r}: header {header} comes from the environment variable {source.env}, "
                    "which is not set on the engine host", reason="failed",
                    hint=f"set {source.env} in the engine's environment (then restart the engine)")
            headers[header] = value
        return (server.url, tuple(sorted(headers.items()))), headers

    # -- on the hub's loop ----------------------------------------------------------------------------

    async def _call(self, key: _Key, url: str, headers: dict[str, str], tool: str, arguments: dict[str, Any],
                    deadline: float) -> Any:
        self._in_flight += 1
        try:
            async with asyncio.timeout_at(deadline):
                session = self._session(key, url, headers)
                client = await session.client()
                started = time.monotonic()
                try:
                    return await client.call_tool(tool, arguments)
                except Exception as exc:
                    self._drop_if_broken(key, session, exc)
                    session.raise_if_cut(started, exc)
                    raise
        finally:
            self._in_flight -= 1

    async def _list(self, key: _Key, url: str, headers: dict[str, str], deadline: float) -> dict[str, Listed]:
        self._in_flight += 1
        try:
            async with asyncio.timeout_at(deadline):
                session = self._session(key, url, headers)
                client = await session.client()
                tools: dict[str, Listed] = {}
                cursor: str | None = None
                started = time.monotonic()
                try:
                    for _ in range(MAX_LIST_PAGES):
                        page = await client.list_tools(cursor=cursor)
                        tools.update((t.name, _listed(t)) for t in page.tools)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                except Exception as exc:
                    self._drop_if_broken(key, session, exc)
                    session.raise_if_cut(started, exc)
                    raise
                return tools
        finally:
            self._in_flight -= 1

    def _session(self, key: _Key, url: str, headers: dict[str, str]) -> Session:
        session = self._sessions.get(key)
        if session is None or session.ended:
            session = Session(url, headers)
            self._sessions[key] = session
            session.task.add_done_callback(lambda _: self._forget(key, session))
        return session

    def _forget(self, key: _Key, session: Session) -> None:
        if self._sessions.get(key) is session:
            del self._sessions[key]

    def _drop_if_broken(self, key: _Key, session: Session, exc: Exception) -> None:
        """Close the session after a transport failure (not after an error the server answered with)."""
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED
        from pydantic import ValidationError

        if isinstance(exc, ValidationError) or (isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED):
            return
        self._forget(key, session)
        session.end()

    async def _close_all(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _listed(tool: Any) -> Listed:
    import jsonschema

    schema = tool.input_schema
    try:
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise jsonschema.SchemaError("not an object schema")
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError:
        schema = ANY_OBJECT  # the server checks its own arguments
    return Listed(tool.description or tool.title or tool.name, schema)


def _result(server: str, tool: str, result: Any) -> JsonValue:
    """A tool result as JSON: its structured content, else its content blocks; an error result fails."""
    if result.is_error:
        said = " ".join(b.text for b in result.content if getattr(b, "type", "") == "text")[:2000]
        raise errors.ToolFailure(f"MCP server {server!r}: tool {tool!r} answered with an error: {said or '(no text)'}",
                                 reason="failed")
    if result.structured_content is not None:
        return result.structured_content
    return {"content": [_block(b) for b in result.content]}


def _block(block: Any) -> JsonValue:
    data = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {k: v for k, v in data.items() if k not in ("_meta", "meta", "annotations")}


def _failure(what: str, exc: BaseException) -> errors.ToolFailure:
    """The reason the model is given for an exception of the SDK or the transport."""
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED
    from pydantic import ValidationError

    leaf = _leaf(exc)
    if isinstance(leaf, AnswerTooLarge):
        return errors.ToolFailure(f"{what}: {leaf}", reason="too_large",
                                  hint="ask the tool for less (the engine reads at most "
                                       f"{MAX_ANSWER_SIZE // (1024 * 1024)} MiB of one answer)")
    if isinstance(leaf, TimeoutError):
        return errors.ToolFailure(f"{what} did not answer in time", reason="timeout",
                                  hint="raise resource_limits.tool_call_timeout (or the server's timeout) in the "
                                       "agent file, or check the server")
    if isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED:
        return errors.ToolFailure(f"{what}: the server is unreachable (the connection closed; the next call "
                                  "opens a new one)", reason="failed",
                                  hint="check that the server runs; retry the call")
    if isinstance(leaf, MCPError):
        return errors.ToolFailure(f"{what}: the server answered with error {leaf.code}: {_brief(leaf.error.message)}",
                                  reason="failed", hint="check the server's url and headers (e.g. its token)")
    if isinstance(leaf, ValidationError):
        return errors.ToolFailure(f"{what}: the server's answer is malformed: {leaf.error_count()} problem(s), "
                                  f"first: {leaf.errors()[0]['msg']}", reason="failed",
                                  hint="the server does not speak the MCP protocol correctly")
    name = type(leaf).__name__
    if "Connect" in name or isinstance(leaf, (ConnectionError, OSError)):
        return errors.ToolFailure(f"{what}: the server is unreachable ({name}: {_brief(str(leaf))})", reason="failed",
                                  hint="check that the server runs and its url in mcp_servers")
    return errors.ToolFailure(f"{what} failed: {name}: {_brief(str(leaf))}", reason="failed")


def _brief(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (SDK messages embed multi-line validation reports)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
