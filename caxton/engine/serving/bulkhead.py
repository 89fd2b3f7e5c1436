"""Bulkheads of the message path: per agent, a bounded queue and a bounded wait, on the event loop.

A message first takes a slot of its agent's ``Bulkhead`` (``Bulkheads.admit``), then
runs (on the loop or in a message thread, ``caxton.engine.http.app._deliver``), then gives the
slot back. An agent runs at most ``capacity`` messages at once: the sum over its serving
revisions (two during a canary; a shadow's mirror not counted) of a WASM revision's pool
size (``resource_limits.pool_size``) or, for any other runtime, ``OTHER_CAPACITY``. Beyond that up to
``server.max_queued_messages_per_agent`` wait, each for at most ``server.max_queue_wait``.
A message past the queue is refused at once (429 ``agent_overloaded``), and so is one
that would wait longer than ``ADMIT_SHARE`` of ``max_queue_wait`` going by the slowest of
the agent's last ``RECENT_HOLDS`` messages (how long each held its slot); one that still
waited too long gets 503 ``queue_timeout``. Both carry ``Retry-After`` (the backlog's
expected drain time by the moving average of hold times, at least 1 s). Waiting happens
here, on the loop: a waiting message holds no worker thread, so a slow agent's backlog
can never take the threads of other agents or of the control plane.

``Bulkheads.overload()`` is the readiness rule (``/api/v1/ready``): why the engine should
shed load, or None. See docs/limits.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import TYPE_CHECKING

from caxton.errors import AgentOverloaded, QueueTimeout
from caxton.spec.identity import agent_id

if TYPE_CHECKING:
    from caxton.engine.core import Engine

#: Messages at once per agent whose runtime has no pool size (config agents: LLM calls that mostly wait).
OTHER_CAPACITY = 32
#: Weight of the newest hold time in a bulkhead's moving average (``Retry-After`` estimates).
HOLD_WEIGHT = 0.2
#: A message is queued only while its expected wait is within this share of ``max_queue_wait``: the rest
#: is headroom for the agent slowing down, so an admitted message rarely ends in a late 503 (a client
#: would rather have the 429 at once).
ADMIT_SHARE = 0.6
#: How many of the latest hold times the admission estimate takes the maximum of.
RECENT_HOLDS = 16


class Bulkhead:
    """The slots of one agent: ``capacity`` running, at most ``max_queued`` waiting (FIFO) for ``max_wait`` s."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.hold_s = 0.0  # moving average of how long a message holds its slot
        self.recent: deque[float] = deque(maxlen=RECENT_HOLDS)  # the latest hold times (the admission estimate)

    @property
    def queued(self) -> int:
        return len(self.waiters)

    def retry_after(self) -> float:
        """About how long the current backlog takes to clear (s), at least 1."""
        return max(1.0, math.ceil((len(self.waiters) + self.running) * self.hold_s / max(self.capacity, 1)))

    async def enter(self, max_queued: int, max_wait: float) -> float:
        """Take a slot, waiting on the loop if need be; returns when it was taken (``time.perf_counter``)."""
        if self.running < self.capacity and not self.waiters:
            self.running += 1
            return time.perf_counter()
        if len(self.waiters) >= max_queued:
            raise AgentOverloaded(
                f"agent {self.name!r} has {len(self.waiters)} messages waiting (the limit) and "
                f"{self.running} running", retry_after=self.retry_after(),
                hint="retry after Retry-After seconds, send less, or raise server.max_queued_messages_per_agent")
        hold = max(self.recent, default=self.hold_s)  # the slowest recent message: an estimate that errs long
        expected = (len(self.waiters) + 1) * hold / max(self.capacity, 1)
        if expected > max_wait * ADMIT_SHARE:
            raise AgentOverloaded(
                f"agent {self.name!r} is behind: a message would wait about {expected:.1f} s for its turn "
                f"(server.max_queue_wait: {max_wait:g} s)", retry_after=self.retry_after(),
                hint="retry after Retry-After seconds, send less, or raise server.max_queue_wait")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(max_wait):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self.leave(None)  # the slot was handed over just as the wait ended: pass it on
            else:
                waiter.cancel()
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass  # ``leave`` already dropped it (cancelled before this ran)
            if isinstance(error, TimeoutError):
                raise QueueTimeout(
                    f"a message to agent {self.name!r} waited {max_wait:g} s for its turn",
                    retry_after=self.retry_after(),
                    hint="retry after Retry-After seconds, send less, or raise server.max_queue_wait") from None
            raise
        return time.perf_counter()

    def leave(self, entered: float | None) -> None:
        """Give a slot back (to the first waiter, if any); ``entered``: from ``enter``, for the hold average."""
        if entered is not None:
            held = time.perf_counter() - entered
            self.hold_s += (held - self.hold_s) * HOLD_WEIGHT
            self.recent.append(held)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to it: ``running`` stays
                return
        self.running -= 1


class Bulkheads:
    """The bulkhead of every agent of one engine (made on an agent's first message; only on the event loop)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heads: dict[str, Bulkhead] = {}

    def capacity(self, ident: str) -> int | None:
        """Messages the agent runs at once, or None when it has no serving revision (``send`` says why)."""
        route = self.engine.router.get(ident)
        if route is None:
            return None
        sizes = [getattr(backend.serving.runtime, "pool_size", None) for backend in route.backends]
        return sum((size if isinstance(size, int) else OTHER_CAPACITY) for size in sizes) if sizes else None

    async def admit(self, name: str) -> tuple[Bulkhead, float] | None:
        """A slot of agent ``name`` (give it back with ``Bulkhead.leave``), or None for an agent not serving."""
        ident = agent_id(name)
        capacity = self.capacity(ident)
        if capacity is None:
            idle = self.heads.get(ident)
            if idle is not None and idle.running + idle.queued == 0:
                del self.heads[ident]  # removed or suspended: forget it
            return None
        head = self.heads.get(ident)
        if head is None:
            head = self.heads[ident] = Bulkhead(name, capacity)
        head.capacity = capacity
        server = self.engine.config.server
        return head, await head.enter(server.max_queued_messages_per_agent, server.max_queue_wait)

    def admitted(self) -> int:
        """Messages running or waiting, engine-wide."""
        return sum(head.running + head.queued for head in self.heads.values())

    def overload(self) -> str | None:
        """Why ``/ready`` says 503: messages running or waiting engine-wide at ``server.max_inflight_messages``."""
        limit = self.engine.config.server.max_inflight_messages
        admitted = self.admitted()
        if admitted >= limit:
            return (f"{admitted} messages are running or waiting engine-wide "
                    f"(server.max_inflight_messages: {limit})")
        return None
