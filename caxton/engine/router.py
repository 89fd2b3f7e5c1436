"""The router: which started revision of an agent answers a message.

Holds, per agent id, a ``Route``: the serving revisions with their traffic
weights (percent). Today a deploy swaps to a single revision at 100 %; the
rollouts issue adds more backends and weights. A conversation is pinned to
one backend by hashing its id, so weighted routing is sticky per
conversation. Swaps replace the whole ``Route`` object in one assignment, so
readers never see a half-updated route. Called by ``caxton.engine.core``.
"""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from caxton.engine.runtime import ServingRuntime


@dataclass(frozen=True)
class Backend:
    serving: ServingRuntime
    weight: int


@dataclass(frozen=True)
class Route:
    """Backends of one agent; weights add up to 100."""

    agent_id: str
    backends: tuple[Backend, ...]

    def pick(self, conversation_id: str | None) -> ServingRuntime:
        if len(self.backends) == 1:
            return self.backends[0].serving
        point = zlib.crc32(conversation_id.encode()) % 100 if conversation_id else random.randrange(100)
        for backend in self.backends:
            if point < backend.weight:
                return backend.serving
            point -= backend.weight
        return self.backends[-1].serving

    def traffic(self) -> dict[str, int]:
        return {str(b.serving.revision): b.weight for b in self.backends}

    def servings(self) -> Iterator[ServingRuntime]:
        return (b.serving for b in self.backends)


class Router:
    """Agent id -> Route. Reads are lock-free; writes are serialised."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> Route | None:
        return self._routes.get(agent_id)

    def ids(self) -> list[str]:
        return sorted(self._routes)

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def swap(self, agent_id: str, serving: ServingRuntime) -> Route | None:
        """Send all traffic of ``agent_id`` to ``serving``; return the route it replaced."""
        return self.set(Route(agent_id, (Backend(serving, 100),)))

    def set(self, route: Route) -> Route | None:
        if sum(b.weight for b in route.backends) != 100:
            raise ValueError(f"weights of {route.agent_id} must add up to 100")
        with self._lock:
            old = self._routes.get(route.agent_id)
            self._routes[route.agent_id] = route
            return old

    def remove(self, agent_id: str) -> Route | None:
        with self._lock:
            return self._routes.pop(agent_id, None)

    def acquire(self, agent_id: str, conversation_id: str | None) -> ServingRuntime | None:
        """A backend with a reserved slot for one message, or None if the agent has no route.

        A backend that began draining between the route read and ``acquire``
        is skipped by re-reading the route, which by then points to the
        replacement: this is what makes a swap lose no message.
        """
        for _ in range(1000):
            route = self._routes.get(agent_id)
            if route is None:
                return None
            serving = route.pick(conversation_id)
            if serving.acquire():
                return serving
        return None
