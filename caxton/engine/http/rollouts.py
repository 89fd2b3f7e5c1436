"""HTTP routes of rollouts: status (one agent or all), promote, abort.

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.rollouts.controller.RolloutController``. Used by
``caxton rollout status|promote|abort`` through ``caxton.client.rollouts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request

from caxton.engine.auth import attributed, principal_of
from caxton.engine.http.openapi import errors
from caxton.engine.state.store import Source
from caxton.spec import api as wire

if TYPE_CHECKING:
    from caxton.engine.core import Engine

PREFIX = "/api/v1"


def mount(app: FastAPI, engine: Engine) -> None:
    """Add ``/api/v1/rollouts`` routes to ``app``."""

    @app.get(PREFIX + "/rollouts", tags=["rollouts"], response_model=wire.RolloutList)
    def rollouts(limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        """Active and recent rollouts of every agent, newest first (active ones with live windows)."""
        return engine.rollouts.status(None, limit)

    @app.get(PREFIX + "/rollouts/{name}", tags=["rollouts"], response_model=wire.RolloutList, responses=errors(404))
    def rollout(name: str, limit: int = Query(5, ge=1, le=200)) -> dict[str, Any]:
        """The rollouts of one agent, newest first: step, weights, measurements, outcome."""
        return engine.rollouts.status(name, limit)

    @app.post(PREFIX + "/rollouts/{name}/promote", tags=["rollouts"], response_model=wire.RolloutView,
              responses=errors(404, 409))
    def promote(name: str, request: Request, body: wire.RolloutActionRequest | None = None) -> dict[str, Any]:
        """Skip the remaining steps: all traffic to the new revision, the old one drained."""
        return engine.rollouts.promote(name, Source(actor=attributed(principal_of(request), body.actor if body else None)))

    @app.post(PREFIX + "/rollouts/{name}/abort", tags=["rollouts"], response_model=wire.RolloutView,
              responses=errors(404, 409))
    def abort(name: str, request: Request, body: wire.RolloutActionRequest | None = None) -> dict[str, Any]:
        """Roll back now: all traffic to the stable revision, the new one drained and stopped."""
        return engine.rollouts.abort(name, Source(actor=attributed(principal_of(request), body.actor if body else None)))
