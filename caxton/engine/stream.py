"""The live event hub: what happens on the engine, pushed to the open event streams.

``EventHub.publish`` may be called from any thread (the store commits events
from worker threads, the rollout controller and the applies run in their own):
it hands the ``Frame`` to each subscriber's event loop with
``loop.call_soon_threadsafe``; nothing polls. A ``Subscription`` (one open
``GET /api/v1/events/stream``, ``caxton.engine.http.stream``) keeps the frames
of its agent (or all) in a bounded queue on its loop; a client that reads too
slowly to keep it under ``server.stream_queue`` frames is dropped
(``next`` answers ``OVERFLOW``) rather than growing the engine's memory.
``close`` (engine shutdown) ends every subscription (``next`` answers ``END``).
Open subscriptions are counted in ``caxton_event_streams_open``.

The frames: the store's events (``Store.committed``, in commit order, with their
ids), rollout progress (``caxton.engine.rollouts.inflight``) and apply progress
lines (``caxton.engine.applies``); their ``data`` are the wire models of
``caxton.spec.api.stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from caxton import metrics
from caxton.engine.state.records import EventRow
from caxton.errors import Unavailable
from caxton.spec.api import StreamKind


@dataclass(frozen=True)
class Frame:
    """One thing to send: its kind (``event: ...``), the agent it is about, its event id (store events only)."""

    kind: str
    agent: str | None
    data: dict[str, Any]
    id: int | None = None


#: What ``Subscription.next`` answers besides a frame.
OVERFLOW: Final = "overflow"
END: Final = "end"
IDLE: Final = "idle"


class Subscription:
    """One stream's frames, on its event loop; ``agent``: only frames about it (None: all)."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop, agent: str | None, size: int) -> None:
        self.hub = hub
        self.loop = loop
        self.agent = agent
        self.size = size
        self._frames: deque[Frame] = deque()
        self._wake = asyncio.Event()
        #: Set when the subscription overflowed (its client is then given a moment, and cut).
        self.dropped = asyncio.Event()
        self.state = "open"

    def offer(self, frame: Frame) -> None:
        """Queue ``frame`` (on the loop); past ``size`` queued frames the subscription overflows."""
        if self.state != "open" or (self.agent is not None and frame.agent != self.agent):
            return
        if len(self._frames) >= self.size:
            self.state = OVERFLOW
            self._frames.clear()
            self.dropped.set()
            metrics.EVENT_STREAMS_DROPPED.inc()
            self.hub.unsubscribe(self)
        else:
            self._frames.append(frame)
        self._wake.set()

    def end(self) -> None:
        if self.state == "open":
            self.state = END
        self._wake.set()

    async def next(self, timeout: float) -> Frame | str:
        """The next frame; ``OVERFLOW`` or ``END`` (then nothing more), or ``IDLE`` after ``timeout`` s of nothing."""
        while True:
            if self.state == OVERFLOW:
                return OVERFLOW
            if self._frames:
                return self._frames.popleft()
            if self.state == END:
                return END
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return IDLE


class EventHub:
    """Every open subscription of one engine. ``publish`` and ``close`` may run in any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self.closed = False

    @property
    def listening(self) -> bool:
        """Whether any stream is open (publishers skip building frames nobody reads)."""
        return bool(self._subscriptions)

    def open(self) -> None:
        """Accept subscriptions (the engine started)."""
        self.closed = False

    def subscribe(self, agent: str | None, size: int) -> Subscription:
        """A new subscription on the running loop; Unavailable once the engine is shutting down."""
        subscription = Subscription(self, asyncio.get_running_loop(), agent, size)
        with self._lock:
            if self.closed:
                raise Unavailable("the engine is shutting down", hint="reconnect once it is back (Last-Event-ID)")
            self._subscriptions.add(subscription)
        metrics.EVENT_STREAMS_OPEN.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription not in self._subscriptions:
                return
            self._subscriptions.discard(subscription)
        metrics.EVENT_STREAMS_OPEN.dec()

    def publish(self, frame: Frame) -> None:
        """Hand ``frame`` to every subscription's loop (in call order: FIFO per loop)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody reads it any more
                subscription.loop.call_soon_threadsafe(subscription.offer, frame)

    def committed(self, rows: list[EventRow]) -> None:
        """The store's events of one transaction (``Store.committed``)."""
        if not self._subscriptions:
            return
        for row in rows:
            self.publish(Frame(StreamKind.EVENT.value, row.agent_id, row.to_dict(), row.id))

    def close(self) -> None:
        """End every subscription; refuse new ones until ``open``."""
        with self._lock:
            self.closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            with contextlib.suppress(RuntimeError):
                subscription.loop.call_soon_threadsafe(subscription.end)
