"""Client side of rollouts: status, promote and abort over the engine API.

Called by ``caxton rollout status|promote|abort`` (``caxton.cli.rollout``); ``series`` feeds charts.
The engine runs every rollout; these calls only read it or end it early.
"""

from __future__ import annotations

from caxton.client.transport import EngineClient, actor, segment
from caxton.spec import api


def status(client: EngineClient, name: str | None = None, *, limit: int | None = None) -> list[api.RolloutView]:
    """Rollouts of ``name`` (or of every agent), newest first; active ones carry a ``live`` window."""
    params = {"limit": limit} if limit else {}
    path = f"/rollouts/{segment(name)}" if name else "/rollouts"
    return client.call(api.RolloutList, "GET", path, params=params).rollouts


def series(client: EngineClient, name: str) -> api.RolloutSeries:
    """Request rate, error rate and p95 latency per revision over ``name``'s last rollout, in time buckets."""
    return client.call(api.RolloutSeries, "GET", f"/rollouts/{segment(name)}/series")


def promote(client: EngineClient, name: str) -> api.RolloutView:
    """Skip the remaining steps of ``name``'s rollout: all traffic to the new revision."""
    return client.call(api.RolloutView, "POST", f"/rollouts/{segment(name)}/promote", json={"actor": actor()})


def abort(client: EngineClient, name: str) -> api.RolloutView:
    """Roll ``name``'s rollout back now: all traffic to the stable revision."""
    return client.call(api.RolloutView, "POST", f"/rollouts/{segment(name)}/abort", json={"actor": actor()})
