"""Long-polls wait on the event loop (issue 18): hundreds of them hold no worker thread.

Real HTTP against a real engine process with a token. An apply stays ``progressing``
(a canary with a long interval), so ``GET /api/v1/applies/{id}?after=N&wait=10`` has
nothing to return and waits. 300 authenticated long-polls at once, more than the
engine's worker threads (``WORKER_THREADS``: a long-poll holding a thread would leave
none), and 50 without a token, which are refused 401 at once. While the 300 are all
still pending, a message and ``GET /agents`` (a control-plane endpoint that runs in a
worker thread) answer. Aborting the rollout adds lines to the apply, and every
long-poll returns with them.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx

from caxton.engine.http.app import WORKER_THREADS
from tests.engine.helpers import deploy_body, wasm_spec, wat_module
from tests.support.engine import running_engine

TOKEN = "long-poll-token"
POLLS = 300
ANONYMOUS = 50
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": "600s"}


async def _progressing_apply(client: httpx.AsyncClient) -> tuple[str, int]:
    """Deploy ``echo`` v1, then apply v2 as a canary that stays in flight; its id and last line number."""
    module = wat_module()
    assert (await client.put("/api/v1/agents/echo", json=deploy_body(wasm_spec("echo"), module))).status_code == 200
    assert (await client.put("/api/v1/agents/other", json=deploy_body(wasm_spec("other"), module))).status_code == 200
    serial = (await client.get("/api/v1/state")).json()["serial"]
    lock = await client.post("/api/v1/lock", json={"holder": "test", "reason": "long-polls", "ttl": 60})
    assert lock.status_code == 200, lock.text
    spec = {**wasm_spec("echo", version="1.0.1"), "rollout": CANARY}
    change = {"id": "echo", "action": "update", "strategy": "canary", "spec": spec,
              "module": base64.b64encode(module).decode()}
    submitted = await client.post("/api/v1/applies", json={
        "plan_id": "long-polls", "engine_serial": serial, "lock_token": lock.json()["token"], "changes": [change]})
    assert submitted.status_code == 200, submitted.text
    apply_id = submitted.json()["id"]
    for _ in range(2000):  # until its change is accepted: the canary runs, the apply is progressing
        view = (await client.get(f"/api/v1/applies/{apply_id}", params={"wait": 1})).json()
        if view["status"] == "progressing":
            return apply_id, max(line["seq"] for line in view["log"])
        assert view["status"] == "running", view
        await asyncio.sleep(0.01)
    raise AssertionError(f"apply {apply_id} never became progressing")


async def _scenario(url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert POLLS > WORKER_THREADS
    limits = httpx.Limits(max_connections=POLLS + ANONYMOUS + 20, max_keepalive_connections=POLLS + 20)
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=60.0, limits=limits) as client, \
            httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as anonymous:
        apply_id, last = await _progressing_apply(client)
        poll = {"after": last, "wait": 10}
        path = f"/api/v1/applies/{apply_id}"
        sent = 0

        async def trace(event: str, _: Any) -> None:  # httpcore: the request is written, its answer awaited
            nonlocal sent
            sent += event == "http11.receive_response_headers.started"

        waiting = [asyncio.ensure_future(client.get(path, params=poll, extensions={"trace": trace}))
                   for _ in range(POLLS)]
        refused = [asyncio.ensure_future(anonymous.get(path, params=poll)) for _ in range(ANONYMOUS)]

        denied = await asyncio.gather(*refused)  # refused at once: the guard answers before any wait
        assert {reply.status_code for reply in denied} == {401}
        for _ in range(6000):  # every long-poll is on the wire before the others are sent
            if sent == POLLS:
                break
            assert not any(task.done() for task in waiting), [task.result() for task in waiting if task.done()]
            await asyncio.sleep(0.01)
        assert sent == POLLS, f"only {sent} long-polls were sent"
        message = await client.post("/api/v1/agents/other/messages", json={"content": "beside"})
        agents = await client.get("/api/v1/agents")
        pending = sum(not task.done() for task in waiting)
        assert message.status_code == 200, message.text
        assert agents.status_code == 200 and {a["name"] for a in agents.json()["agents"]} >= {"echo", "other"}
        assert pending == POLLS, f"only {pending} long-polls were still waiting"

        aborted = await client.post("/api/v1/rollouts/echo/abort", json={"actor": "test"})
        assert aborted.status_code == 200, aborted.text
        answered = await asyncio.gather(*waiting)
        assert {reply.status_code for reply in answered} == {200}
        views: list[dict[str, Any]] = [reply.json() for reply in answered]
        assert all(any(line["seq"] > last for line in view["log"]) for view in views)  # woken by the new lines


def test_long_polls_hold_no_thread_and_unauthenticated_ones_are_refused_at_once(tmp_path: Path) -> None:
    with running_engine(tmp_path, token=TOKEN) as engine:
        asyncio.run(_scenario(engine.url))
