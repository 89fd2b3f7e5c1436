"""Several WASM instances per agent (issue 18): one slow message does not serialise the agent.

Real HTTP against a real engine process. The hold agent (``tests.support.hold``) busy-waits
a while per message and reports how many messages its instance handled and when the
message began and ended, so the evidence is the guest's own: with
``resource_limits.pool_size: 4``, four concurrent messages each ran in an instance of their
own (``seen`` 1) and all at once (every one began before any ended); with ``pool_size: 1``
they ran one after the other in one instance. A redeploy while four messages run waits
for all four instances (each answers 200), then the new revision serves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.engine.helpers import deploy_body, wasm_spec
from tests.support.engine import running_engine
from tests.support.hold import hold_module, parse_hold

LIMITS: dict[str, Any] = {"fuel": 10**12, "max_execution_time_ms": 20_000}


async def _deploy(client: httpx.AsyncClient, name: str, hold_ms: int, pool_size: int, version: str = "1.0.0") -> None:
    spec = wasm_spec(name, version=version, pool_size=pool_size, **LIMITS)
    reply = await client.put(f"/api/v1/agents/{name}", json=deploy_body(spec, hold_module(hold_ms)))
    assert reply.status_code == 200, reply.text


async def _send(client: httpx.AsyncClient, name: str, count: int, revision: int = 1) -> list[dict[str, int]]:
    """``count`` concurrent messages, each answered 200 by ``revision``: the guest's replies."""
    replies = await asyncio.gather(*(client.post(f"/api/v1/agents/{name}/messages", json={"content": n})
                                     for n in range(count)))
    assert [reply.status_code for reply in replies] == [200] * count, [reply.text for reply in replies]
    assert [reply.json()["revision"] for reply in replies] == [revision] * count
    return [parse_hold(reply.json()["reply"]) for reply in replies]


async def _runtime(client: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get(f"/api/v1/agents/{name}")).json()["runtime"]
    return found


async def _scenario(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        await _deploy(client, "pooled", 1000, pool_size=4)
        await _deploy(client, "serial", 100, pool_size=1)

        pooled = await _send(client, "pooled", 4)
        assert sorted(reply["seen"] for reply in pooled) == [1, 1, 1, 1]  # four instances, one message each
        assert max(reply["start"] for reply in pooled) < min(reply["end"] for reply in pooled)  # all at once
        [stats] = await _runtime(client, "pooled")
        assert (stats["pool_size"], stats["instances"], stats["restarts"]) == (4, 4, 0)

        serial = sorted(await _send(client, "serial", 2), key=lambda reply: reply["seen"])
        assert [reply["seen"] for reply in serial] == [1, 2]  # one instance, in order
        assert serial[0]["end"] <= serial[1]["start"]

        # a redeploy while every instance runs a message: it waits for all four, none fails
        running = asyncio.ensure_future(_send(client, "pooled", 4))
        while (await _runtime(client, "pooled"))[0]["in_flight"] < 4:
            assert not running.done(), "the four messages ended before they were seen running together"
            await asyncio.sleep(0.01)
        await _deploy(client, "pooled", 1, pool_size=4, version="1.0.1")
        # the old revision was stopped only once all four instances were back: each answered
        assert sorted(reply["seen"] for reply in await running) == [2, 2, 2, 2]
        assert [reply["seen"] for reply in await _send(client, "pooled", 1, revision=2)] == [1]
        assert [s["revision"] for s in await _runtime(client, "pooled")] == [2]


def test_a_pool_of_four_answers_four_concurrent_messages_at_once(tmp_path: Path) -> None:
    with running_engine(tmp_path) as engine:
        asyncio.run(_scenario(engine.url))
