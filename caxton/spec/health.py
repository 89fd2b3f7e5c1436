"""The health vocabulary of every health payload (``/api/v1/health``, ``/health/detailed``, ``/health/memory``).

``healthy``, ``degraded`` (serving, but something needs attention) or
``unhealthy`` (not serving); when parts are combined the worst wins. The
engine (``caxton.engine.reads``), the memory (``caxton.memory.service``) and
``caxton health`` use these names. Pure.
"""

from __future__ import annotations

from enum import StrEnum


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


HEALTHY, DEGRADED, UNHEALTHY = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
#: Best first.
ORDER = (HEALTHY, DEGRADED, UNHEALTHY)


def worst(*statuses: str) -> str:
    """The worst of ``statuses`` (``healthy`` when none)."""
    return max(statuses, key=ORDER.index, default=HEALTHY)
