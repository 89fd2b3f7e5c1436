"""The engine as a whole: health, readiness, the state snapshot, the event log and the metrics text.

Called by ``caxton health``, ``caxton agents`` and ``caxton show`` (``caxton.cli``), by plan/apply
(``caxton.client.plan_apply``: the snapshot a plan is made against) and by the reconcile loop.
"""

from __future__ import annotations

from caxton import errors
from caxton.client.transport import EngineClient
from caxton.spec import api
from caxton.spec.state import StateSnapshot


def health(client: EngineClient) -> api.Health:
    """``/health``: ``status`` healthy or unhealthy (``phase`` starting, serving, stopping), agents serving."""
    return client.call(api.Health, "GET", "/health")


def health_detailed(client: EngineClient) -> api.HealthDetailed:
    """``/health/detailed``: as ``health``, ``degraded`` when an agent failed or a circuit is open."""
    return client.call(api.HealthDetailed, "GET", "/health/detailed")


def ready(client: EngineClient) -> bool:
    """Whether ``/ready`` answers 200 (503: starting, stopping or saturated)."""
    try:
        client.request("GET", "/ready")
    except errors.Unavailable:
        return False
    return True


def state(client: EngineClient) -> StateSnapshot:
    """The engine's state snapshot (``/state``): what a plan is made against."""
    return client.call(StateSnapshot, "GET", "/state")


def events(client: EngineClient, *, agent: str | None = None, after: int = 0, limit: int = 100) -> api.EventList:
    """The event log after sequence ``after`` (of one ``agent``, when given), oldest first."""
    params: dict[str, str | int] = {"after": after, "limit": limit}
    if agent:
        params["agent"] = agent
    return client.call(api.EventList, "GET", "/events", params=params)


def metrics(client: EngineClient) -> str:
    """The Prometheus exposition text of ``/metrics``."""
    return str(client.request("GET", "/metrics"))
