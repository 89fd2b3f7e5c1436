"""The engine's MCP client in process (``caxton.llm.tools.mcp.McpHub``) against the real MCP test server:
pooled sessions shared by parallel calls, the listing cache and its TTLs (injected clock), headers from the
environment (a changed value opens a new session), the tool source, nothing left running after failures
and ``close``, and an in-process engine that serves MCP tools across revisions and ends the hub when it stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from caxton import errors
from caxton.llm.tools import mcp
from caxton.llm.tools.base import ToolContext
from caxton.engine.core import Engine
from caxton.spec.agent import McpServerSpec
from caxton.spec.project import ProjectConfig
from tests.support.clock import ManualClock
from tests.support.mcp_server import McpTestServer, running_mcp_server
from tests.support.paths import free_port

TOKEN = "hub-token"


@pytest.fixture(scope="module")
def server() -> Iterator[McpTestServer]:
    with running_mcp_server(token=TOKEN) as running:
        yield running


def spec(url: str, tools: list[str], **extra: Any) -> McpServerSpec:
    return McpServerSpec.model_validate({"name": "t", "url": url, "allowed_tools": tools,
                                         "headers": {"Authorization": {"env": "HUB_AUTH"}}, **extra})


def call(hub: mcp.McpHub, server: McpServerSpec, tool: str, arguments: dict[str, Any], timeout: float = 10.0) -> Any:
    return hub.call(server, tool, arguments, time.monotonic() + timeout)


def failure(hub: mcp.McpHub, server: McpServerSpec, tool: str, arguments: dict[str, Any],
            timeout: float = 10.0) -> errors.ToolFailure:
    with pytest.raises(errors.ToolFailure) as failed:
        call(hub, server, tool, arguments, timeout)
    return failed.value


def mcp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "caxton-mcp"]


def test_parallel_calls_share_one_pooled_session(server: McpTestServer) -> None:
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"})
    try:
        target = spec(server.url, ["add"])
        with ThreadPoolExecutor(8) as pool:
            sums = list(pool.map(lambda n: call(hub, target, "add", {"a": n, "b": 1}), range(16)))
        assert sums == [{"result": n + 1} for n in range(16)]
        assert hub.stats() == {"sessions": 1, "in_flight": 0, "threads": 1}
    finally:
        hub.close()


def test_the_listing_is_cached_for_its_ttl_then_kept_while_the_server_is_down() -> None:
    clock = ManualClock()
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"}, clock=clock.monotonic, list_ttl=30.0,
                     failed_list_ttl=5.0)
    try:
        with running_mcp_server(token=TOKEN) as running:
            target = spec(running.url, ["add"])
            listed = hub.listing(target)
            assert listed["add"] == mcp.Listed("Add two integers.", listed["add"].parameters)
            assert listed["add"].parameters["required"] == ["a", "b"]
        clock.advance(31.0)
        assert hub.listing(target) == listed  # the refresh failed: the last listing is kept
        assert "unreachable" in failure(hub, target, "add", {"a": 1, "b": 2}).message
        assert hub.stats()["in_flight"] == 0
    finally:
        hub.close()


def test_a_server_that_never_listed_its_tools_is_described_as_unavailable() -> None:
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"})
    try:
        down = spec(f"http://127.0.0.1:{free_port()}/mcp", ["add"])
        tool = mcp.McpTool(hub, down, "add")
        assert "unavailable now" in tool.description and "unreachable" in tool.description
        assert tool.parameters == mcp.ANY_OBJECT  # the server checks its own arguments
        assert hub.stats()["in_flight"] == 0
    finally:
        hub.close()


def test_header_values_come_from_the_environment_when_a_session_opens(server: McpTestServer) -> None:
    environ = {"HUB_AUTH": f"Bearer {TOKEN}"}
    hub = mcp.McpHub(environ=environ)
    try:
        target = spec(server.url, ["whoami"])
        assert call(hub, target, "whoami", {}) == {"result": f"Bearer {TOKEN}"}
        environ["HUB_AUTH"] = "Bearer wrong"  # a new value: a new session, refused by the server
        assert "error response" in failure(hub, target, "whoami", {}).message
        del environ["HUB_AUTH"]
        missing = failure(hub, target, "whoami", {})
        assert "HUB_AUTH" in missing.message and "not set on the engine host" in missing.message
        assert missing.hint is not None and "set HUB_AUTH" in missing.hint
    finally:
        hub.close()


def test_the_source_builds_only_allowed_tools_of_declared_servers(server: McpTestServer) -> None:
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"})
    try:
        context = ToolContext(agent="a", mcp_servers=(spec(server.url, ["add"]),), allowed_hosts=("127.0.0.1",))
        tool = hub.build("t.add", context)
        assert tool is not None and tool.name == "t.add" and tool.description == "Add two integers."
        assert tool.call({"a": 20, "b": 22}, time.monotonic() + 10) == {"result": 42}
        assert hub.build("t.secret", context) is None  # listed by the server, not allowed
        assert hub.build("other.add", context) is None and hub.build("calculator", context) is None
    finally:
        hub.close()


def test_a_server_off_the_allowed_hosts_is_offered_but_never_contacted(server: McpTestServer) -> None:
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"})
    try:
        for allowed in ((), ("localhost", "127.0.0.1:1", "[::1]")):
            context = ToolContext(agent="a", mcp_servers=(spec(server.counted_url, ["add"]),), allowed_hosts=allowed)
            tool = hub.build("t.add", context)
            assert tool is not None and "whose host this agent may not reach" in tool.description
            assert tool.parameters == mcp.ANY_OBJECT
            with pytest.raises(errors.ToolFailure) as refused:
                tool.call({"a": 1, "b": 2}, time.monotonic() + 10)
            assert refused.value.reason == "not_allowed"
            assert refused.value.message == (
                f"MCP server 't': 127.0.0.1:{server.port} is not on this agent's allowed hosts")
        assert server.counted() == 0 and hub.stats()["threads"] == 0  # no session, not even the hub's loop
    finally:
        hub.close()


def test_failures_and_close_leave_nothing_running(server: McpTestServer) -> None:
    before = len(mcp_threads())
    hub = mcp.McpHub(environ={"HUB_AUTH": f"Bearer {TOKEN}"})
    target = spec(server.url, ["slow", "fail", "add", "big"])
    assert failure(hub, target, "slow", {"seconds": 30}, timeout=0.3).reason == "timeout"
    assert failure(hub, spec(server.url, ["slow"], timeout="200ms"), "slow", {"seconds": 30}).reason == "timeout"
    assert "failed on purpose" in failure(hub, target, "fail", {}).message
    assert failure(hub, target, "big", {"size": mcp.MAX_ANSWER_SIZE + 1}).reason == "too_large"  # cut, not read
    assert call(hub, target, "big", {"size": 10}) == {"result": "x" * 10}  # the session goes on
    assert "malformed" in failure(hub, spec(server.malformed_url, ["add"]), "add", {"a": 1, "b": 1}).message
    assert "Failed to parse" in failure(hub, spec(server.garbage_url, ["add"]), "add", {"a": 1, "b": 1}).message
    down = spec(f"http://127.0.0.1:{free_port()}/mcp", ["add"])
    assert "unreachable" in failure(hub, down, "add", {"a": 1, "b": 1}).message
    assert call(hub, target, "add", {"a": 1, "b": 1}) == {"result": 2}  # the session survived the timeouts
    stats = hub.stats()
    assert stats["in_flight"] == 0 and stats["sessions"] == 2  # the good server and the malformed one
    assert len(mcp_threads()) == before + 1
    hub.close()
    assert hub.stats() == {"sessions": 0, "in_flight": 0, "threads": 0}
    assert len(mcp_threads()) == before
    stopped = failure(hub, target, "add", {"a": 1, "b": 1})
    assert "stopping" in stopped.message and len(mcp_threads()) == before


def test_an_engine_serves_mcp_tools_across_revisions_and_its_stop_ends_the_hub(
    make_engine_inproc: Callable[..., Engine], server: McpTestServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_AUTH", f"Bearer {TOKEN}")
    before = len(mcp_threads())
    engine = make_engine_inproc(ProjectConfig.model_validate({"memory": {"enabled": False}}))
    servers = [{"name": "t", "url": server.url, "allowed_tools": ["add"],
                "headers": {"Authorization": {"env": "HUB_AUTH"}}}]
    for version in ("1.0.0", "1.0.1"):  # a new revision builds its tools again, on the same hub and session
        engine.deploy({"name": "adder", "version": version, "system_prompt": "Add.", "tools": ["t.add"],
                       "mcp_servers": servers, "security_policy": {"allowed_hosts": ["127.0.0.1"]}}, None)
        reply = engine.send("adder", '/tool t.add {"a": 40, "b": 2}')["reply"]
        assert [(c["tool"], c["outcome"], c["result"]) for c in reply["tool_calls"]] == [("t.add", "ok", {"result": 42})]
    hub = engine.ops.context.mcp
    assert hub.stats() == {"sessions": 1, "in_flight": 0, "threads": 1}
    engine.stop()
    assert hub.stats() == {"sessions": 0, "in_flight": 0, "threads": 0}
    assert len(mcp_threads()) == before
