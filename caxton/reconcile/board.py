"""The engine's reconcile endpoints, seen from the loop and the CLI.

``report`` posts the loop's status (and the passes the engine has not counted
yet) to ``POST /api/v1/reconcile/status``; ``read`` gets it back (with
``wait``, a long poll that returns early when the webhook
``POST /api/v1/reconcile`` fires); ``trigger`` is that webhook. The engine
side is ``caxton.engine.reconcile_api``. Called by ``caxton.reconcile.loop``
and ``caxton reconcile status|trigger``.
"""

from __future__ import annotations

from typing import Any

from caxton.client.engine import EngineClient

#: Seconds a long poll waits (the engine caps it at 5): an engine shutdown waits at most this for the loop.
LONG_POLL = 2.0


def report(client: EngineClient, status: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = client.request("POST", "/reconcile/status", json={"status": status, "runs": runs})
    return result


def read(client: EngineClient, *, triggers_after: int = -1, wait: float = 0.0) -> dict[str, Any]:
    params = {"triggers_after": triggers_after, "wait": wait}
    result: dict[str, Any] = client.request("GET", "/reconcile/status", params=params)
    return result


def trigger(client: EngineClient, reason: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = client.request("POST", "/reconcile", json={"reason": reason})
    return result
