"""Rate limits of the engine's API: token buckets per caller, one budget per kind of call.

Two budgets (``security.rate_limits`` in caxton.yaml): ``messages``
(``POST /api/v1/agents/{name}/messages``) and ``mutations`` (every other
POST, PUT, PATCH and DELETE). Reads are never limited. A caller is the
principal the auth middleware put on ``scope["state"]["principal"]`` (its
``name``), else the client's address. Over budget: 429 with ``Retry-After``
(whole seconds, >= 1), the engine's JSON error body, and
``caxton_rate_limited_total{budget}`` counts it.

``RateLimit`` is the ASGI middleware (inside the auth middleware, so it sees
the principal; before the body is read, so a refused call costs nothing).
``Limiter.configure`` swaps the budgets (SIGHUP reload, from the reload
thread). The clock is injected so tests need no sleeping. Checks run on the
event loop thread only: no locks.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from caxton import metrics
from caxton.engine.limits import error_response
from caxton.errors import RateLimited
from caxton.spec.project import RateLimits

MESSAGES = "messages"
MUTATIONS = "mutations"
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MESSAGE_PATH = re.compile(r"/api/v1/agents/[^/]+/messages/?")
#: At this many callers per budget, buckets that have refilled (same as absent) are dropped, then the
#: oldest, down to half: memory stays bounded and the sweep is paid once per MAX_CALLERS / 2 new callers.
MAX_CALLERS = 10_000

Clock = Callable[[], float]


@dataclass(frozen=True)
class Budget:
    """``rate`` tokens per second up to ``burst`` held; a rate of 0 means unlimited."""

    rate: float
    burst: int


class Bucket:
    """A token bucket: starts full, refills at ``budget.rate`` per second, holds at most ``budget.burst``."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, budget: Budget, now: float) -> None:
        self.tokens = float(budget.burst)
        self.stamp = now

    def take(self, budget: Budget, now: float) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        self.tokens = min(float(budget.burst), self.tokens + (now - self.stamp) * budget.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / budget.rate

    def full(self, budget: Budget, now: float) -> bool:
        return self.tokens + (now - self.stamp) * budget.rate >= budget.burst


def budgets(limits: RateLimits) -> dict[str, Budget]:
    """The enabled budgets of ``security.rate_limits`` (a rate of 0 leaves that budget out)."""
    found = {
        MESSAGES: Budget(limits.messages_per_second, limits.messages_burst),
        MUTATIONS: Budget(limits.mutations_per_second, limits.mutations_burst),
    }
    return {name: budget for name, budget in found.items() if budget.rate > 0}


def budget_of(method: str, path: str) -> str | None:
    """Which budget a call spends: ``messages``, ``mutations`` or None (reads)."""
    if method not in _MUTATING:
        return None
    if method == "POST" and _MESSAGE_PATH.fullmatch(path):
        return MESSAGES
    return MUTATIONS


class Limiter:
    """The buckets of every caller, per budget.

    ``configure`` may run on another thread (SIGHUP reload): budgets and buckets are replaced together,
    as one tuple, so a check sees either the old pair or the new one.
    """

    def __init__(self, limits: RateLimits, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._state: tuple[dict[str, Budget], dict[str, dict[str, Bucket]]] = ({}, {})
        self.configure(limits)

    @property
    def budgets(self) -> dict[str, Budget]:
        return self._state[0]

    def configure(self, limits: RateLimits) -> None:
        """Apply new limits (reload); callers start again with full buckets of the new size."""
        enabled = budgets(limits)
        self._state = (enabled, {name: {} for name in enabled})

    def check(self, budget: str, caller: str) -> float:
        """Spend one call of ``budget`` for ``caller``: 0.0 when allowed, else seconds to wait."""
        enabled, buckets_of = self._state
        limit = enabled.get(budget)
        if limit is None:
            return 0.0
        now = self.clock()
        buckets = buckets_of[budget]
        bucket = buckets.get(caller)
        if bucket is None:
            if len(buckets) >= MAX_CALLERS:
                self._forget(buckets, limit, now)
            bucket = buckets[caller] = Bucket(limit, now)
        return bucket.take(limit, now)

    @staticmethod
    def _forget(buckets: dict[str, Bucket], limit: Budget, now: float) -> None:
        for caller in [c for c, b in buckets.items() if b.full(limit, now)]:
            del buckets[caller]
        excess = len(buckets) - MAX_CALLERS // 2
        for caller in list(buckets)[:max(0, excess)]:  # oldest first: they get a full bucket again
            del buckets[caller]


def caller_of(scope: Scope) -> str:
    """The principal's name (``token:NAME``), else the client address (``addr:HOST``)."""
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    name = getattr(principal, "name", None)
    if isinstance(name, str):
        return "token:" + name
    client = scope.get("client")
    return "addr:" + (str(client[0]) if client else "unknown")


def refusal(budget: str, wait: float) -> JSONResponse:
    """The 429 answer: the engine's error body and ``Retry-After`` in whole seconds (>= 1)."""
    retry = max(1, math.ceil(wait))
    error = RateLimited(
        f"rate limit of {budget} exceeded for this caller; retry in {retry} s",
        hint=f"slow down, or raise security.rate_limits.{budget}_per_second / {budget}_burst in caxton.yaml",
        details={"budget": budget, "retry_after": retry},
    )
    return error_response(error, headers={"Retry-After": str(retry)})


class RateLimit:
    """ASGI middleware: spend the caller's budget before the call runs; 429 when it is empty."""

    def __init__(self, app: ASGIApp, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (budget := budget_of(scope["method"], scope["path"])) is not None:
            wait = self.limiter.check(budget, caller_of(scope))
            if wait > 0.0:
                metrics.RATE_LIMITED.labels(budget=budget).inc()
                await refusal(budget, wait)(scope, receive, send)
                return
        await self.app(scope, receive, send)
