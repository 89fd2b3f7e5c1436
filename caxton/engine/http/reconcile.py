"""HTTP routes of the reconcile loop: its status board, the webhook, and its metrics.

The loop (``caxton reconcile --watch`` or ``caxton up``) runs outside the
engine's request path; after every pass it POSTs its status here, and the
engine keeps the latest one in memory (the loop re-reports after every pass and
after an engine restart, which ``board`` identifies) and counts the pass in the
Prometheus metrics (``caxton_reconcile_*``). ``POST /api/v1/reconcile`` (the
webhook a git host calls on push) bumps a trigger counter; the loop long-polls
``GET /api/v1/reconcile/status?triggers_after=N&wait=S`` and runs a pass at
once when the counter moves. ``caxton reconcile status`` reads the same GET.

Mounted by ``caxton.engine.http.app.create_app``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Query

from caxton import metrics
from caxton.engine.http.deps import router as new_router
from caxton.spec import api as wire

#: Longest long-poll: short enough that an engine shutdown never waits long for a loop's request.
MAX_WAIT = 5.0
OUTCOMES = frozenset({"applied", "progressing", "in_sync", "degraded", "invalid", "refused", "failed", "rolled_back",
                      "unreachable", "error"})
SUCCESS = frozenset({"applied", "progressing", "in_sync", "degraded"})


@dataclass
class Board:
    """The latest status a loop reported, and the webhook's trigger counter."""

    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: dict[str, Any] | None = None
    reported_at: float | None = None
    triggers: int = 0
    last_trigger: dict[str, Any] | None = None
    _changed: asyncio.Event | None = field(default=None, repr=False)

    def changed(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def trigger(self, reason: str | None) -> None:
        self.triggers += 1
        self.last_trigger = {"at": _iso(time.time()), "reason": reason}
        self.changed().set()
        self._changed = asyncio.Event()

    def view(self) -> dict[str, Any]:
        return {
            "board": self.instance,
            "now": _iso(time.time()),
            "reported": self.status is not None,
            "reported_at": _iso(self.reported_at) if self.reported_at else None,
            "status": self.status,
            "triggers": self.triggers,
            "last_trigger": self.last_trigger,
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def count(run: wire.ReconcileRun) -> None:
    """Count one pass in the reconcile metrics."""
    outcome = run.outcome if run.outcome in OUTCOMES else "error"
    metrics.RECONCILE_RUNS.labels(outcome).inc()
    metrics.RECONCILE_DURATION.observe(run.duration_seconds)
    if outcome in SUCCESS:
        metrics.RECONCILE_LAST_SUCCESS.set(time.time())


def routes(board: Board) -> APIRouter:
    """The reconcile status and webhook routes over ``board`` (it lives with the app, not the engine:
    a loop re-reports after an engine restart)."""
    router = new_router()

    @router.get("/reconcile/status", tags=["reconcile"], response_model=wire.BoardView)
    async def reconcile_status(triggers_after: int = Query(-1, ge=-1, le=wire.MAX_INT),
                               wait: float = Query(0.0, ge=0.0, le=60.0)) -> dict[str, Any]:
        """The loop's last report; with ``wait``, returns early when ``triggers`` passes ``triggers_after``."""
        if wait > 0 and board.triggers <= triggers_after:
            try:
                await asyncio.wait_for(board.changed().wait(), timeout=min(wait, MAX_WAIT))
            except TimeoutError:
                pass
        return board.view()

    @router.post("/reconcile/status", tags=["reconcile"], response_model=wire.ReportAck)
    async def reconcile_report(body: wire.ReconcileStatusReport) -> dict[str, Any]:
        """A reconcile loop reports its status (and the pass it just ran)."""
        board.status = body.status
        board.reported_at = time.time()
        for run in body.runs:
            count(run)
        return {"triggers": board.triggers}

    @router.post("/reconcile", tags=["reconcile"], response_model=wire.TriggerAck)
    async def reconcile_trigger(body: wire.TriggerRequest | None = None) -> dict[str, Any]:
        """Webhook: ask the reconcile loop for a pass now (e.g. on a git push)."""
        board.trigger(body.reason if body else None)
        return {"triggered": True, "triggers": board.triggers, "loop_reported": board.status is not None}

    return router
