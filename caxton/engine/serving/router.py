"""The router: which started revision of an agent answers a message.

Holds, per agent id, a ``Route``: the serving revisions with their traffic
weights (percent), whether conversations are *sticky* (a rollout is in
progress: a conversation stays on the revision that started it), and an
optional *mirror* (the shadow strategy: a copy of each message goes to a
candidate revision). A new conversation is placed by hashing its id against
the weights, so the same weights always place it the same way (also after a
restart); ``ConversationPins`` remembers where each conversation went.
Engines sharing a PostgreSQL store set ``Router.claim``: while a route is
sticky, a conversation this engine has not seen is placed by the store
(``claim``: the revision another engine pinned it to, or this pick, written
before the message is handled), so it keeps its revision on every replica.
Swaps replace the whole ``Route`` object in one assignment, so readers never
see a half-updated route. Called by ``caxton.engine.core`` (messages),
``caxton.engine.operations`` (immediate swaps) and
``caxton.engine.rollouts`` (weights, pins, mirrors).
"""

from __future__ import annotations

import functools
import random
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from caxton.clock import SYSTEM, Clock
from caxton.engine.serving.runtime import ServingRuntime

#: Conversations idle longer than this are forgotten by the pins (seconds).
PIN_IDLE_TTL = 3600.0
#: Upper bound of pins kept per agent; the idle ones go first.
MAX_PINS = 200_000


class Mirror(Protocol):
    """Receives a copy of every answered message (the shadow strategy)."""

    serving: ServingRuntime

    def offer(self, envelope: dict[str, Any], reply: Any) -> None: ...


#: ``claim(conversation_id, revision)``: the conversation's pinned revision in the store, ``revision`` if it had none
#: (then pinned to it). One agent's; ``Router.claim`` takes the agent id first.
Claim = Callable[[str, int], int]


class ConversationPins:
    """Conversation id -> [revision, last seen (``now()``: the engine clock's monotonic s), claimed] of one agent.

    Plain dict operations (atomic under the GIL): the message path never
    takes a lock. While ``journal`` is a list, every new or moved pin is
    appended to it so the rollout controller can persist it. ``claim``
    (engines sharing a store) places, while sticky, the conversations these
    pins do not know or know only from before (``claimed`` false): a pin
    noted while the route was not sticky was never agreed with the other engines.
    """

    def __init__(self, now: Callable[[], float] = SYSTEM.monotonic, claim: Claim | None = None) -> None:
        self.now = now
        self.claim = claim
        self.pins: dict[str, list[Any]] = {}
        self.journal: list[tuple[str, int]] | None = None

    def note(self, conversation_id: str, revision: int, now: float, *, claimed: bool = False) -> None:
        self.pins[conversation_id] = [revision, now, claimed]
        journal = self.journal
        if journal is not None:
            journal.append((conversation_id, revision))

    def take_journal(self) -> list[tuple[str, int]]:
        """The pins noted since the last call (empty when not journaling)."""
        if self.journal is None:
            return []
        taken, self.journal = self.journal, []
        return taken

    def on(self, revision: int, *, idle: float | None = None, now: float | None = None) -> int:
        """Conversations pinned to ``revision`` (seen in the last ``idle`` s when given)."""
        now = self.now() if now is None else now
        return sum(1 for pin in list(self.pins.values())
                   if pin[0] == revision and (idle is None or now - pin[1] <= idle))

    def sweep(self, now: float | None = None) -> int:
        """Forget idle conversations (and the oldest beyond ``MAX_PINS``); return how many."""
        now = self.now() if now is None else now
        items = list(self.pins.items())
        doomed = [key for key, pin in items if now - pin[1] > PIN_IDLE_TTL]
        if len(items) - len(doomed) > MAX_PINS:
            alive = sorted((pin[1], key) for key, pin in items if now - pin[1] <= PIN_IDLE_TTL)
            doomed += [key for _, key in alive[: len(alive) - MAX_PINS]]
        for key in doomed:
            self.pins.pop(key, None)
        return len(doomed)


@dataclass(frozen=True)
class Backend:
    serving: ServingRuntime
    weight: int


@dataclass(frozen=True)
class Route:
    """Backends of one agent; weights add up to 100 (a backend may have 0: pinned conversations only)."""

    agent_id: str
    backends: tuple[Backend, ...]
    sticky: bool = False
    mirror: Mirror | None = None
    pins: ConversationPins | None = field(default=None, compare=False)

    def pick(self, conversation_id: str | None) -> ServingRuntime:
        """The backend a new conversation goes to: its id hashed against the weights (random without id)."""
        if len(self.backends) == 1:
            return self.backends[0].serving
        point = zlib.crc32(conversation_id.encode()) % 100 if conversation_id else random.randrange(100)
        for backend in self.backends:
            if point < backend.weight:
                return backend.serving
            point -= backend.weight
        return self.backends[-1].serving

    def choose(self, conversation_id: str | None, *, block: bool = True) -> ServingRuntime | None:
        """The backend of one message: the conversation's pinned revision while sticky, else ``pick``.

        While sticky, a conversation not pinned here (or pinned only before: not ``claimed``) is placed
        by ``pins.claim`` when there is one (a round trip to the store, proposing the revision it had
        here, else the pick); without ``block`` that returns None instead, having done nothing.
        """
        pins = self.pins
        if conversation_id is None or pins is None:
            return self.pick(conversation_id)
        now = pins.now()
        pin = pins.pins.get(conversation_id)
        had: ServingRuntime | None = None
        if pin is not None:
            if len(self.backends) == 1:
                serving = self.backends[0].serving
                if pin[0] == serving.revision:
                    pin[1] = now
                    return serving
            elif self.sticky:
                had = next((b.serving for b in self.backends if b.serving.revision == pin[0]), None)
                if had is not None and (pins.claim is None or (len(pin) > 2 and pin[2])):
                    pin[1] = now
                    return had
        serving = had or self.pick(conversation_id)
        if pins.claim is None or not self.sticky:
            pins.note(conversation_id, serving.revision, now)
            return serving
        if not block:
            return None
        revision = pins.claim(conversation_id, serving.revision)
        serving = next((b.serving for b in self.backends if b.serving.revision == revision), serving)
        pins.note(conversation_id, serving.revision, now, claimed=True)
        return serving

    def traffic(self) -> dict[str, int]:
        return {str(b.serving.revision): b.weight for b in self.backends}

    def servings(self) -> Iterator[ServingRuntime]:
        """Every started runtime of the route, the mirror's included."""
        yield from (b.serving for b in self.backends)
        if self.mirror is not None:
            yield self.mirror.serving

    def serving(self, revision: int) -> ServingRuntime | None:
        for candidate in self.servings():
            if candidate.revision == revision:
                return candidate
        return None


class Router:
    """Agent id -> Route. Reads are lock-free; writes are serialised. Pins are timed by ``clock``."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        #: ``claim(agent_id, conversation_id, revision)`` of the store the engines share (set before any route).
        self.claim: Callable[[str, str, int], int] | None = None
        self._routes: dict[str, Route] = {}
        self._pins: dict[str, ConversationPins] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> Route | None:
        return self._routes.get(agent_id)

    def ids(self) -> list[str]:
        return sorted(self._routes)

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def pins(self, agent_id: str) -> ConversationPins:
        """The conversation pins of ``agent_id`` (they outlive routes: a swap keeps them)."""
        with self._lock:
            return self._pins_of(agent_id)

    def _pins_of(self, agent_id: str) -> ConversationPins:  # under self._lock
        pins = self._pins.get(agent_id)
        if pins is None:
            claim = self.claim
            pins = self._pins[agent_id] = ConversationPins(
                self.clock.monotonic, None if claim is None else functools.partial(claim, agent_id))
        return pins

    def swap(self, agent_id: str, serving: ServingRuntime) -> Route | None:
        """Send all traffic of ``agent_id`` to ``serving``; return the route it replaced."""
        return self.set(Route(agent_id, (Backend(serving, 100),)))

    def set(self, route: Route) -> Route | None:
        if sum(b.weight for b in route.backends) != 100 or any(b.weight < 0 for b in route.backends):
            raise ValueError(f"weights of {route.agent_id} must be >= 0 and add up to 100")
        with self._lock:
            if route.pins is None:
                route = replace(route, pins=self._pins_of(route.agent_id))
            old = self._routes.get(route.agent_id)
            self._routes[route.agent_id] = route
            return old

    def remove(self, agent_id: str) -> Route | None:
        with self._lock:
            self._pins.pop(agent_id, None)
            return self._routes.pop(agent_id, None)

    def acquire(self, agent_id: str, conversation_id: str | None, *, block: bool = True) -> ServingRuntime | None:
        """A backend with a reserved slot for one message, or None if the agent has no route (or, without
        ``block``, when placing the conversation needs the store: ``Route.choose``).

        A backend that began draining between the route read and ``acquire``
        is skipped by re-reading the route, which by then points to the
        replacement: this is what makes a swap lose no message.
        """
        for _ in range(1000):
            route = self._routes.get(agent_id)
            if route is None:
                return None
            serving = route.choose(conversation_id, block=block)
            if serving is None:
                return None
            if serving.acquire():
                return serving
        return None
