"""Bulkheads (issue 18): a slow agent's backlog is bounded and never slows other agents or the control plane.

Real HTTP against a real engine process (``tests.support.engine``): caxton.yaml sets
``server.max_queued_messages_per_agent``, ``server.max_queue_wait`` and
``server.max_inflight_messages`` low, so a slow WASM agent saturated with concurrent
messages refuses its excess at once (429 ``agent_overloaded`` / 503 ``queue_timeout``, both
with ``Retry-After``) and ``/ready`` says 503, while a healthy agent and ``GET /agents`` answer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from caxton.engine.serving.bulkhead import Bulkhead
from caxton.errors import AgentOverloaded, QueueTimeout
from tests.engine.helpers import deploy_body, wasm_spec, wat_module
from tests.support.engine import running_engine

#: ~0.2-0.5 s of busy loop per message, so the backlog (1 running + 4 queued, each within
#: max_queue_wait) outlives the polling of /ready on a loaded machine (the test asserts no timing of it).
SPIN = ("(local $i i32) (local.set $i (i32.const 200000000))"
        " (block $done (loop $l (br_if $done (i32.eqz (local.get $i)))"
        " (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br $l)))")
CONFIG = """\
server:
  max_queued_messages_per_agent: 4
  max_queue_wait: 10s
  max_inflight_messages: 4
"""


async def _saturate(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30.0,
                                 limits=httpx.Limits(max_connections=100)) as client:
        for name, module in (("slow", wat_module(SPIN)), ("fast", wat_module())):
            spec = wasm_spec(name, fuel=10**12, max_execution_time_ms=10_000)
            assert (await client.put(f"/api/v1/agents/{name}", json=deploy_body(spec, module))).status_code == 200
        one = await client.post("/api/v1/agents/slow/messages", json={"content": "x"})
        assert one.status_code == 200, one.text
        idle = (await client.post("/api/v1/agents/fast/messages", json={"content": "x"})).status_code
        assert idle == 200

        flood = [asyncio.ensure_future(client.post("/api/v1/agents/slow/messages", json={"content": i}))
                 for i in range(40)]
        while (await client.get("/api/v1/ready")).status_code == 200:  # the backlog builds up
            if all(task.done() for task in flood):  # else this loop would never end (a hung suite)
                pytest.fail("every flooded message was answered before /ready said 503: no backlog built up")
            await asyncio.sleep(0.005)
        ready = await client.get("/api/v1/ready")
        assert ready.status_code == 503 and "server.max_inflight_messages" in ready.json()["error"]["message"]
        assert (await client.get("/api/v1/health")).status_code == 200  # liveness is not readiness

        began = time.perf_counter()
        fast = await client.post("/api/v1/agents/fast/messages", json={"content": "beside"})
        agents = await client.get("/api/v1/agents")
        beside = time.perf_counter() - began
        backlog = [task for task in flood if not task.done()]

        replies = await asyncio.gather(*flood)
        assert fast.status_code == 200 and agents.status_code == 200
        assert backlog, "the slow agent had no backlog while the others were measured"
        assert beside < 1.0, f"a healthy agent and GET /agents took {beside:.2f} s beside the backlog"
        statuses = [reply.status_code for reply in replies]
        assert set(statuses) <= {200, 429, 503}, statuses
        refused = [reply for reply in replies if reply.status_code != 200]
        assert statuses.count(429) >= 40 - 1 - 4 - 4, statuses  # past 1 running + 4 queued (+ slack), at once
        for reply in refused:
            assert int(reply.headers["Retry-After"]) >= 1
            code = reply.json()["error"]["code"]
            assert code == ("agent_overloaded" if reply.status_code == 429 else "queue_timeout")
        for _ in range(400):  # drained: ready again
            if (await client.get("/api/v1/ready")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("/ready stayed 503 after the backlog drained")


def test_a_saturated_agent_refuses_its_excess_while_others_and_the_control_plane_stay_fast(tmp_path: Path) -> None:
    config = tmp_path / "caxton.yaml"
    config.write_text(CONFIG)
    with running_engine(tmp_path, config=config) as engine:
        asyncio.run(_saturate(engine.url))


def test_a_queued_message_times_out_with_queue_timeout_and_its_slot_goes_to_the_next() -> None:
    """``max_queue_wait``: a waiter past it gets 503; a slot handed over never leaks."""

    async def scenario() -> None:
        head = Bulkhead("slow", capacity=1)
        held = await head.enter(max_queued=2, max_wait=5.0)
        with pytest.raises(QueueTimeout) as waited:
            await head.enter(max_queued=2, max_wait=0.05)
        assert waited.value.http_status == 503 and waited.value.retry_after >= 1
        assert not waited.value.revision_fault  # never a failure of the revision in rollout analysis
        second = asyncio.ensure_future(head.enter(max_queued=1, max_wait=5.0))
        await asyncio.sleep(0)
        with pytest.raises(AgentOverloaded) as full:  # max_queued_messages_per_agent: 1, one waiting
            await head.enter(max_queued=1, max_wait=5.0)
        assert full.value.http_status == 429 and full.value.code == "agent_overloaded"
        head.leave(held)
        head.leave(await second)
        assert (head.running, head.queued) == (0, 0)

    asyncio.run(scenario())


def test_a_message_that_would_wait_past_max_queue_wait_is_refused_at_once() -> None:
    """Going by how long messages recently held the slot, a wait it cannot survive is a 429 now, not a 503 later."""

    async def scenario() -> None:
        head = Bulkhead("slow", capacity=1)
        head.leave(await head.enter(max_queued=10, max_wait=5.0) - 5.0)  # one message held its slot ~5 s
        held = await head.enter(max_queued=10, max_wait=5.0)
        with pytest.raises(AgentOverloaded) as refused:
            await head.enter(max_queued=10, max_wait=0.5)
        assert head.queued == 0  # refused without joining the queue
        assert "server.max_queue_wait" in refused.value.message and refused.value.retry_after >= 1
        head.leave(held)

    asyncio.run(scenario())


def test_a_waiter_cancelled_while_the_slot_is_given_back_leaves_no_trace() -> None:
    """A client gone (or a timeout) just as ``leave`` runs: no error, no slot lost or leaked."""

    async def scenario() -> None:
        head = Bulkhead("slow", capacity=1)
        held = await head.enter(max_queued=5, max_wait=5.0)
        waiting = asyncio.ensure_future(head.enter(max_queued=5, max_wait=5.0))
        await asyncio.sleep(0)
        waiting.cancel()  # cancels its waiter now; its cleanup runs later
        head.leave(held)  # finds the cancelled waiter first
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (head.running, head.queued) == (0, 0)
        head.leave(await head.enter(max_queued=5, max_wait=5.0))  # the slot is free

    asyncio.run(scenario())
