"""Counts every HTTP request by route template, method and status (``caxton_http_requests_total``).

A pure ASGI middleware, the outermost one, so refusals by the guard, the rate
limits and the request limits are counted too. The route is the template
Starlette matched (``/api/v1/agents/{name}``), never the raw path, so agent
names do not multiply series; a request that matched no route (or was refused
before routing) counts as ``route="unmatched"``. Counter children are cached
per (route, method, status): the message path pays one dict lookup and one
increment.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caxton import metrics

UNMATCHED = "unmatched"


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._count(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if not started:  # Starlette's outermost error handler answers 500 after us
                self._count(scope, 500)
            raise

    def _count(self, scope: Scope, status: int) -> None:
        route: Any = scope.get("route")
        key = (route.path if route is not None else UNMATCHED, scope["method"], status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metrics.HTTP_REQUESTS.labels(key[0], key[1], str(status))
        child.inc()
