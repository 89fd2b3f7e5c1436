"""MCP call overhead: caxton's MCP tool against the bare SDK call, side by side in one run.

One MCP test server (``tests/support/mcp_app.py``: the SDK's ``MCPServer`` over streamable HTTP
on 127.0.0.1, in a subprocess) answers ``add(a, b)``. Each round measures, one after another:

- ``bare SDK``: ``await client.call_tool("add", ...)`` on one open ``mcp.Client`` session in an
  asyncio loop (what a Python program using the SDK directly pays);
- ``caxton McpTool.call``: the tool the loop calls, from a plain thread (the bridge to the hub's
  event loop thread, the pooled session, the result turned into JSON);
- ``caxton tool loop, 1 call``: one tool call through ``ToolLoop.run`` (its worker thread, argument
  validation, metrics, the result message), the model excluded (it answers at once);
- ``SDK, a session per call``: opening a session for each call (why the hub pools them);
- ``the bridge alone``: the hop from a thread to the hub's loop and back with a coroutine that
  does nothing (``McpHub._run``): the part of caxton's overhead the network noise hides.

Run: .venv/bin/python benchmarks/mcp_bench.py [--runs 5] [--calls 200]
Prints the median over runs of each run's p50 (and p90); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caxton.llm import providers as prov
from caxton.llm.tools import base, loop, mcp
from caxton.spec.agent import McpServerSpec
from tests.support.mcp_server import running_mcp_server


def bare_sdk(url: str, calls: int, *, session_per_call: bool = False) -> list[float]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    def client(http: Any) -> Any:
        return Client(streamable_http_client(url, http_client=http), cache=None)

    async def run() -> list[float]:
        out = []
        async with httpx2.AsyncClient(trust_env=False) as http:
            async with client(http) as session:
                await session.call_tool("add", {"a": 1, "b": 2})  # warm: the handshake is not measured
                for n in range(calls):
                    started = time.perf_counter()
                    if session_per_call:
                        async with client(http) as fresh:
                            await fresh.call_tool("add", {"a": n, "b": 1})
                    else:
                        await session.call_tool("add", {"a": n, "b": 1})
                    out.append(time.perf_counter() - started)
        return out

    return asyncio.run(run())


def timed(calls: int, one: Callable[[int], Any]) -> list[float]:
    one(-1)  # warm
    out = []
    for n in range(calls):
        started = time.perf_counter()
        one(n)
        out.append(time.perf_counter() - started)
    return out


def through_tool(tool: mcp.McpTool, calls: int) -> list[float]:
    def one(n: int) -> None:
        assert tool.call({"a": n, "b": 1}, time.monotonic() + 10) == {"result": n + 1}

    return timed(calls, one)


def through_loop(tool: mcp.McpTool, calls: int) -> list[float]:
    tools = loop.ToolLoop(base.ToolRegistry([tool]), agent="bench", max_calls=10, call_timeout=10.0)
    final = prov.Completion(text="done", model="m")

    def one(n: int) -> None:
        asked = prov.Completion(text="", model="m",
                                tool_calls=(prov.ToolCall("call_1", tool.name, f'{{"a": {n}, "b": 1}}'),))
        answers = iter((asked, final))
        reply, records = tools.run(lambda _: next(answers), (prov.ChatMessage(role="user", content="x"),),
                                   time.monotonic() + 10)
        assert records[0].outcome == "ok", records[0].result

    return timed(calls, one)


def bridge_only(hub: mcp.McpHub, calls: int) -> list[float]:
    async def nothing() -> int:
        return 1

    return timed(calls, lambda n: hub._run(nothing(), time.monotonic() + 10, "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[list[float]]] = {}
    with running_mcp_server() as server:
        hub = mcp.McpHub()
        spec = McpServerSpec(name="bench", url=server.url, allowed_tools=["add"])
        tool = hub.build("bench.add", base.ToolContext(agent="bench", mcp_servers=(spec,),
                                                       allowed_hosts=("127.0.0.1",)))
        assert isinstance(tool, mcp.McpTool)
        tool.description  # the listing is cached before the rounds
        try:
            for _ in range(args.runs):
                results.setdefault("bare SDK (one session)", []).append(bare_sdk(server.url, args.calls))
                results.setdefault("caxton McpTool.call (pooled session)", []).append(through_tool(tool, args.calls))
                results.setdefault("caxton tool loop, 1 call (model excluded)", []).append(
                    through_loop(tool, args.calls))
                results.setdefault("SDK, a session per call", []).append(
                    bare_sdk(server.url, max(20, args.calls // 10), session_per_call=True))
                results.setdefault("the bridge alone (thread -> hub loop -> thread)", []).append(
                    bridge_only(hub, args.calls * 10))
        finally:
            hub.close()
    print(f"{args.runs} runs of {args.calls} calls (a session per call: {max(20, args.calls // 10)}); "
          "median over runs of each run's p50 / p90")
    p50s = {label: statistics.median(statistics.median(r) for r in runs) * 1e3 for label, runs in results.items()}
    for label, runs in results.items():
        p90 = statistics.median(sorted(r)[int(len(r) * 0.9)] for r in runs) * 1e3
        print(f"{label:<48} p50 {p50s[label]:7.3f} ms  p90 {p90:7.3f} ms")
    bare = p50s["bare SDK (one session)"]
    for label in ("caxton McpTool.call (pooled session)", "caxton tool loop, 1 call (model excluded)"):
        print(f"overhead of {label}: {p50s[label] - bare:+.3f} ms p50 ({p50s[label] / bare:.2f}x the bare call)")


if __name__ == "__main__":
    main()
