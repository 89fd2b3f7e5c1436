"""Client side of rollouts: status, watch, promote and abort over the engine API.

Called by ``caxton rollout status|promote|abort`` (``caxton.cli.rollout``); ``series`` feeds charts.
``watch`` follows rollouts on the engine's event stream (``caxton.client.events``): the rollouts as
they are after each change, until they have ended. The engine runs every rollout; these calls only
read it or end it early.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from caxton.client import events, status as engine_status
from caxton.client.transport import EngineClient, actor, segment
from caxton.spec import api

#: The events that end a rollout (``rollout_succeeded``, ``rollout_rolled_back``, ...).
ENDED = frozenset(f"rollout_{status.value}" for status in api.ROLLOUT_FINAL)


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


@dataclass(frozen=True)
class Watched:
    """The rollouts shown after one change, and the change: a rollout's progress, or the event that ended
    it (None: the first picture)."""

    rollouts: list[api.RolloutView]
    change: api.RolloutProgress | api.Event | None


def watch(client: EngineClient, name: str | None = None, *, limit: int | None = None) -> Iterator[Watched]:
    """``status``, then again after each change of the rollouts shown, until none of them is active
    (with ``name``: its newest one). The stream resumes after the last event before the first
    ``status``, so a rollout that ends in between is still seen ending."""
    before = engine_status.events(client, agent=name, limit=1).events
    found = status(client, name, limit=limit)
    yield Watched(found, None)
    if not _active(found, name):
        return
    for frame in events.follow(client, agent=name, after=before[-1].id if before else 0):
        change = frame.data
        if isinstance(change, api.RolloutProgress) and change.change != api.RolloutChange.SNAPSHOT:
            found = _merged(found, change.rollout, limit)
        elif isinstance(change, api.Event) and change.what in ENDED and _about(change, found):
            found = status(client, name, limit=limit)  # its final record
        else:
            continue
        yield Watched(found, change)
        if not _active(found, name):
            return


def _active(found: list[api.RolloutView], name: str | None) -> bool:
    """Whether a watch goes on: the agent's newest rollout (or any rollout shown) is still active."""
    if name:
        return bool(found) and found[0].status in api.ROLLOUT_ACTIVE
    return any(r.status in api.ROLLOUT_ACTIVE for r in found)


def _merged(found: list[api.RolloutView], rollout: api.RolloutView, limit: int | None) -> list[api.RolloutView]:
    """``found`` with ``rollout`` in its place (a new one first)."""
    if any(r.id == rollout.id for r in found):
        return [rollout if r.id == rollout.id else r for r in found]
    return [rollout, *found][:limit]


def _about(event: api.Event, found: list[api.RolloutView]) -> bool:
    rollout = event.data.get("rollout") if isinstance(event.data, dict) else None
    return any(r.id == rollout and r.status in api.ROLLOUT_ACTIVE for r in found)
