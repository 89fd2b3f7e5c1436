"""The engine's reconcile endpoints (the loop's status board), seen from the loop and the CLI.

``report`` posts the loop's status (and the passes the engine has not counted
yet) to ``POST /api/v1/reconcile/status``; ``read`` gets it back (with
``wait``, a long poll that returns early when the webhook
``POST /api/v1/reconcile`` fires); ``trigger`` is that webhook. The engine
side is ``caxton.engine.http.reconcile``. Called by ``caxton.reconcile.loop``
and ``caxton reconcile status|trigger``.
"""

from __future__ import annotations

from collections.abc import Sequence

from caxton.client.transport import EngineClient
from caxton.spec import api

#: Seconds a long poll waits (the engine caps it at 5): an engine shutdown waits at most this for the loop.
LONG_POLL = 2.0


def report(client: EngineClient, status: api.JsonObject, runs: Sequence[api.ReconcileRun]) -> api.ReportAck:
    body = {"status": status, "runs": [run.model_dump(mode="json") for run in runs]}
    return client.call(api.ReportAck, "POST", "/reconcile/status", json=body)


def read(client: EngineClient, *, triggers_after: int = -1, wait: float = 0.0) -> api.BoardView:
    params = {"triggers_after": triggers_after, "wait": wait}
    return client.call(api.BoardView, "GET", "/reconcile/status", params=params)


def trigger(client: EngineClient, reason: str | None = None) -> api.TriggerAck:
    return client.call(api.TriggerAck, "POST", "/reconcile", json={"reason": reason})
