"""HTTP routes of rollouts: status (one agent or all), time series, promote, abort.

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.rollouts.controller.RolloutController`` through the ``Engine``
facade. Used by
``caxton rollout status|promote|abort`` through ``caxton.client.rollouts``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from caxton.engine.auth import attributed
from caxton.engine.http.deps import CallerDep, EngineDep, router as new_router
from caxton.engine.http.openapi import errors
from caxton.engine.state.records import Source
from caxton.spec import api as wire


def routes() -> APIRouter:
    """The ``/api/v1/rollouts`` routes."""
    router = new_router()

    @router.get("/rollouts", tags=["rollouts"], response_model=wire.RolloutList)
    def rollouts(engine: EngineDep, limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        """Active and recent rollouts of every agent, newest first (active ones with live windows)."""
        return engine.rollout_status(None, limit)

    @router.get("/rollouts/{name}", tags=["rollouts"], response_model=wire.RolloutList, responses=errors(404))
    def rollout(name: str, engine: EngineDep, limit: int = Query(5, ge=1, le=200)) -> dict[str, Any]:
        """The rollouts of one agent, newest first: step, weights, measurements, outcome."""
        return engine.rollout_status(name, limit)

    @router.get("/rollouts/{name}/series", tags=["rollouts"], response_model=wire.RolloutSeries,
                responses=errors(404))
    def rollout_series(name: str, engine: EngineDep) -> dict[str, Any]:
        """Request rate, error rate and p95 latency per revision, in time buckets, over the agent's last
        rollout since the engine started (live while it runs): the console's charts."""
        return engine.rollout_series(name)

    @router.post("/rollouts/{name}/promote", tags=["rollouts"], response_model=wire.RolloutView,
                 responses=errors(404, 409))
    def promote(name: str, engine: EngineDep, caller: CallerDep,
                body: wire.RolloutActionRequest | None = None) -> dict[str, Any]:
        """Skip the remaining steps: all traffic to the new revision, the old one drained."""
        return engine.promote(name, Source(actor=attributed(caller, body.actor if body else None)))

    @router.post("/rollouts/{name}/abort", tags=["rollouts"], response_model=wire.RolloutView,
                 responses=errors(404, 409))
    def abort(name: str, engine: EngineDep, caller: CallerDep,
              body: wire.RolloutActionRequest | None = None) -> dict[str, Any]:
        """Roll back now: all traffic to the stable revision, the new one drained and stopped."""
        return engine.abort(name, Source(actor=attributed(caller, body.actor if body else None)))

    return router
